#pragma once
// Circuit breakers (DESIGN §5, §9): one per LLM provider, plus one guarding `bash` timeouts.
// closed -> open after `failure_threshold` failures (or `slow_threshold` slow runs) within
// `window`; open rejects until `recovery` has passed; then half-open admits at most
// `half_open_max_calls` probes: a success closes it, a failure opens it again. Breakers idle
// longer than `idle_ttl` are pruned. Pure logic on a Clock.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"

namespace pi_server::reliability {

enum class BreakerState { closed, open, half_open };
std::string_view to_string(BreakerState state);

class CircuitBreaker {
 public:
  CircuitBreaker(const Clock& clock, const BreakerOptions& options);

  // May a call start now? In half-open this takes one probe slot.
  bool allow();
  // Time until an open breaker turns half-open (zero otherwise).
  std::chrono::milliseconds retry_after() const;
  void record_success();
  void record_failure();
  void record_slow();
  // A probe ended without telling success or failure (aborted): frees its slot.
  void release_probe();

  BreakerState state() const;
  // Failures / slow runs inside the window now.
  std::size_t failures() const { return recent(failures_); }
  std::size_t slow_calls() const { return recent(slow_); }
  std::uint64_t times_opened() const { return times_opened_; }
  SteadyTime last_used() const { return last_used_; }

 private:
  void trim(std::deque<SteadyTime>& events) const;
  std::size_t recent(const std::deque<SteadyTime>& events) const;
  void open_now();

  const Clock& clock_;
  const BreakerOptions& options_;
  BreakerState state_ = BreakerState::closed;
  std::deque<SteadyTime> failures_;
  std::deque<SteadyTime> slow_;
  SteadyTime opened_at_{};
  std::size_t probes_ = 0;
  SteadyTime last_probe_{};
  std::uint64_t times_opened_ = 0;
  SteadyTime last_used_{};
};

class CircuitBreakerManager {
 public:
  CircuitBreakerManager(const Clock& clock, BreakerOptions options)
      : clock_(clock), options_(options) {}

  struct Rejection {
    std::string message;  // "Circuit open for openai (recovery in 25s)"
    std::chrono::milliseconds retry_after;
  };
  // nullopt: go ahead (a half-open probe slot is taken if needed).
  std::optional<Rejection> check(const std::string& key);
  CircuitBreaker& breaker(const std::string& key);
  void prune();

  bool any_open() const;
  // {key: {state, failures, slowCalls, recoveryInMs, timesOpened}}
  nlohmann::json snapshot() const;
  const std::map<std::string, CircuitBreaker>& all() const { return breakers_; }
  const BreakerOptions& options() const { return options_; }

 private:
  const Clock& clock_;
  BreakerOptions options_;
  std::map<std::string, CircuitBreaker> breakers_;
};

// Per-connection command rate limit: a token bucket refilled at `rate` per second up to
// `burst`.
class TokenBucket {
 public:
  TokenBucket(const Clock& clock, double rate_per_second, double burst);
  // Takes `n` tokens; false (and takes none) when fewer are there.
  bool try_take(double n = 1.0);
  // Time until `n` tokens are available.
  std::chrono::milliseconds retry_after(double n = 1.0) const;

 private:
  void refill();
  const Clock& clock_;
  double rate_;
  double burst_;
  double tokens_;
  SteadyTime last_;
};

}  // namespace pi_server::reliability
