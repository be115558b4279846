#pragma once
// Logs refused requests with the peer's address, at most one line per address per
// window: a client retrying a bad token in a loop (or a scan) must not flood the log.
// The line after a quiet period says how many refusals it stood for.
#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/refusal.hpp"
#include "pi_server/clock.hpp"

namespace pi_server::auth {

class RefusalLog {
 public:
  static constexpr std::chrono::seconds kWindow{10};
  // Addresses remembered at most; beyond, the oldest quiet ones are forgotten.
  static constexpr std::size_t kMaxAddresses = 4096;

  explicit RefusalLog(const Clock& clock) : clock_(clock) {}

  // Counts one refusal; true if it was logged (false: folded into a later line).
  bool note(std::string_view address, Refusal reason, std::string_view path);

 private:
  struct Seen {
    SteadyTime last_logged{};
    std::uint64_t suppressed = 0;
  };
  void prune(SteadyTime now);

  const Clock& clock_;
  std::unordered_map<std::string, Seen> seen_;
};

}  // namespace pi_server::auth
