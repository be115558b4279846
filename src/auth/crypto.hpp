#pragma once
// The few primitives the credential checks need, on OpenSSL's libcrypto: digests, HMAC,
// a constant-time comparison and the encodings tokens arrive in.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pi_server::auth {

using Sha256Digest = std::array<std::uint8_t, 32>;

Sha256Digest sha256(std::string_view data);
Sha256Digest hmac_sha256(std::string_view key, std::string_view data);

// Equal without an early exit (CRYPTO_memcmp): the time taken does not depend on where
// the first difference is. Different sizes compare unequal (sizes are not secret here).
bool constant_time_equal(std::string_view a, std::string_view b);
bool constant_time_equal(const Sha256Digest& a, const Sha256Digest& b);

// 64 hex digits (either case) to a digest; nullopt for anything else.
std::optional<Sha256Digest> parse_sha256_hex(std::string_view hex);

// RFC 4648 §5 base64url without padding (as JWTs use it); nullopt on any other character
// or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64url_encode(std::string_view bytes);

}  // namespace pi_server::auth
