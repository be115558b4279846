#pragma once
// What the tests must know about a sanitized build (the asan preset builds the daemon and
// the tests with -fsanitize=address,undefined).

namespace pi_server::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// RSS is not a leak signal under ASan: freed memory sits in the allocator's quarantine and
// shadow memory grows with every address touched. Tests that bound a daemon's RSS check it
// in the release suite; under the sanitizers they check everything else (and LeakSanitizer
// checks leaks at the daemon's exit).
inline constexpr bool kRssIsMeaningful = !kSanitized;

// Why a test that drives the daemon out of file descriptors skips under the sanitizers:
// UBSan's vptr check validates an object's memory by writing it to a pipe; with no
// descriptor free it cannot make the pipe, reports every virtual call as "invalid vptr" and
// (checks are not recoverable in the asan preset) stops the daemon. A suppression cannot
// help a non-recoverable check. The release suite runs these tests.
inline constexpr const char* kNeedsDescriptorsForSanitizer =
    "the UBSan runtime needs a free descriptor for its vptr check; run in the release suite";

}  // namespace pi_server::testing
