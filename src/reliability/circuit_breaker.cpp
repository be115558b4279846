#include "reliability/circuit_breaker.hpp"

#include <algorithm>
#include <cmath>

namespace pi_server::reliability {
using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string_view to_string(BreakerState state) {
  switch (state) {
    case BreakerState::closed: return "closed";
    case BreakerState::open: return "open";
    case BreakerState::half_open: return "half_open";
  }
  return "closed";
}

CircuitBreaker::CircuitBreaker(const Clock& clock, const BreakerOptions& options)
    : clock_(clock), options_(options), last_used_(clock.steady_now()) {}

BreakerState CircuitBreaker::state() const {
  // Open turns half-open by itself once the recovery time has passed.
  if (state_ == BreakerState::open && clock_.steady_now() - opened_at_ >= options_.recovery)
    return BreakerState::half_open;
  return state_;
}

bool CircuitBreaker::allow() {
  last_used_ = clock_.steady_now();
  if (state_ == BreakerState::open && state() == BreakerState::half_open) {
    state_ = BreakerState::half_open;
    probes_ = 0;
  }
  switch (state_) {
    case BreakerState::closed: return true;
    case BreakerState::open: return false;
    case BreakerState::half_open:
      // Probes that never reported (the run ended without an assistant message) must not
      // hold the breaker shut forever: after a recovery period without news, start over.
      if (probes_ >= options_.half_open_max_calls &&
          clock_.steady_now() - last_probe_ >= options_.recovery)
        probes_ = 0;
      if (probes_ >= options_.half_open_max_calls) return false;
      ++probes_;
      last_probe_ = clock_.steady_now();
      return true;
  }
  return true;
}

milliseconds CircuitBreaker::retry_after() const {
  auto s = state();
  if (s == BreakerState::half_open && state_ == BreakerState::half_open &&
      probes_ >= options_.half_open_max_calls)
    return options_.recovery;  // probes are out; ask again later
  if (s != BreakerState::open) return milliseconds(0);
  auto left = options_.recovery - duration_cast<milliseconds>(clock_.steady_now() - opened_at_);
  return std::max(left, milliseconds(0));
}

void CircuitBreaker::trim(std::deque<SteadyTime>& events) const {
  auto now = clock_.steady_now();
  while (!events.empty() && now - events.front() > options_.window) events.pop_front();
}

std::size_t CircuitBreaker::recent(const std::deque<SteadyTime>& events) const {
  auto now = clock_.steady_now();
  std::size_t n = 0;
  for (auto t : events) n += now - t <= options_.window;
  return n;
}

void CircuitBreaker::open_now() {
  state_ = BreakerState::open;
  opened_at_ = clock_.steady_now();
  probes_ = 0;
  ++times_opened_;
}

void CircuitBreaker::record_success() {
  last_used_ = clock_.steady_now();
  if (state() == BreakerState::half_open || state_ == BreakerState::half_open) {
    // A probe succeeded: the provider is back.
    state_ = BreakerState::closed;
    failures_.clear();
    slow_.clear();
    probes_ = 0;
  }
}

void CircuitBreaker::record_failure() {
  last_used_ = clock_.steady_now();
  if (state_ == BreakerState::half_open || state() == BreakerState::half_open) {
    open_now();
    return;
  }
  if (state_ == BreakerState::open) return;
  failures_.push_back(clock_.steady_now());
  trim(failures_);
  if (failures_.size() >= options_.failure_threshold) open_now();
}

void CircuitBreaker::record_slow() {
  last_used_ = clock_.steady_now();
  if (state_ == BreakerState::open) return;
  slow_.push_back(clock_.steady_now());
  trim(slow_);
  if (slow_.size() >= options_.slow_threshold) open_now();
}

void CircuitBreaker::release_probe() {
  if (state_ == BreakerState::half_open && probes_ > 0) --probes_;
}

std::optional<CircuitBreakerManager::Rejection> CircuitBreakerManager::check(const std::string& key) {
  auto& b = breaker(key);
  if (b.allow()) return std::nullopt;
  auto after = b.retry_after();
  auto seconds = static_cast<long long>(std::ceil(after.count() / 1000.0));
  return Rejection{"Circuit open for " + key + " (recovery in " + std::to_string(seconds) + "s)", after};
}

CircuitBreaker& CircuitBreakerManager::breaker(const std::string& key) {
  auto it = breakers_.find(key);
  if (it == breakers_.end()) it = breakers_.try_emplace(key, clock_, options_).first;
  return it->second;
}

void CircuitBreakerManager::prune() {
  auto now = clock_.steady_now();
  for (auto it = breakers_.begin(); it != breakers_.end();) {
    if (it->second.state() == BreakerState::closed && now - it->second.last_used() > options_.idle_ttl) {
      it = breakers_.erase(it);
    } else {
      ++it;
    }
  }
}

bool CircuitBreakerManager::any_open() const {
  for (const auto& [k, b] : breakers_)
    if (b.state() != BreakerState::closed) return true;
  return false;
}

nlohmann::json CircuitBreakerManager::snapshot() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, b] : breakers_) {
    out[k] = {{"state", std::string(to_string(b.state()))},
              {"failures", b.failures()},
              {"slowCalls", b.slow_calls()},
              {"recoveryInMs", b.retry_after().count()},
              {"timesOpened", b.times_opened()}};
  }
  return out;
}

TokenBucket::TokenBucket(const Clock& clock, double rate_per_second, double burst)
    : clock_(clock), rate_(rate_per_second), burst_(burst), tokens_(burst), last_(clock.steady_now()) {}

void TokenBucket::refill() {
  auto now = clock_.steady_now();
  double seconds = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(burst_, tokens_ + seconds * rate_);
}

bool TokenBucket::try_take(double n) {
  refill();
  if (tokens_ < n) return false;
  tokens_ -= n;
  return true;
}

milliseconds TokenBucket::retry_after(double n) const {
  if (tokens_ >= n || rate_ <= 0) return milliseconds(0);
  return milliseconds(static_cast<long long>(std::ceil((n - tokens_) / rate_ * 1000.0)));
}

}  // namespace pi_server::reliability
