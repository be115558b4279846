#include "auth/refusal_log.hpp"

#include "observability/log.hpp"

namespace pi_server::auth {

bool RefusalLog::note(std::string_view address, Refusal reason, std::string_view path) {
  auto now = clock_.steady_now();
  std::string key(address);
  auto it = seen_.find(key);
  if (it != seen_.end() && now - it->second.last_logged < kWindow) {
    ++it->second.suppressed;
    return false;
  }
  if (it == seen_.end()) {
    if (seen_.size() >= kMaxAddresses) prune(now);
    it = seen_.emplace(std::move(key), Seen{}).first;
  }
  log::warn("auth_refused", {{"remote", std::string(address)},
                             {"reason", std::string(to_string(reason))},
                             {"status", http_status(reason)},
                             {"path", std::string(path.substr(0, 200))},
                             {"suppressedSinceLast", it->second.suppressed}});
  it->second.last_logged = now;
  it->second.suppressed = 0;
  return true;
}

void RefusalLog::prune(SteadyTime now) {
  for (auto it = seen_.begin(); it != seen_.end();)
    it = now - it->second.last_logged >= kWindow ? seen_.erase(it) : std::next(it);
  // Still full (a flood from many addresses within one window): forget them all; the
  // worst case is one extra line per address.
  if (seen_.size() >= kMaxAddresses) seen_.clear();
}

}  // namespace pi_server::auth
