#pragma once
// Whether a command may be admitted now, after the replay lookup: the per-connection rate
// limit, then the circuit breaker that guards it (the session's LLM provider for LLM-bound
// commands, the bash breaker for bash). It also keeps the breakers' books: what agents
// report about their provider, bash timeouts, half-open probes freed by commands that
// ended without telling. Authorization is not a step of its own: every session lookup on the
// way (lane, breaker, preconditions, execution) asks on behalf of the command's principal,
// and someone else's session is simply not found (docs/security.md).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "reliability/circuit_breaker.hpp"
#include "reliability/command_pipeline.hpp"
#include "session/provider_feedback.hpp"

namespace pi_server::server {

struct RateLimit {
  double per_second = 50;
  double burst = 200;
  // Inbound bytes per connection (the parse cost a client may put on the shared loop).
  double bytes_per_second = 16u << 20;
  double bytes_burst = 32u << 20;
};

class AdmissionPolicy : public reliability::AdmissionControl, public session::ProviderFeedback {
 public:
  AdmissionPolicy(const Clock& clock, Scheduler& scheduler, RateLimit rate_limit,
                  BreakerOptions breaker_options, const session::ProviderLookup& providers);
  ~AdmissionPolicy() override;

  // reliability::AdmissionControl
  std::optional<protocol::Response> admit(const reliability::Submission& submission) override;
  void on_finished(const reliability::Submission& submission,
                   const protocol::Response& response) override;
  // session::ProviderFeedback
  void on_provider_result(const std::string& provider, session::ProviderResult result) override;
  void on_run_finished(const std::string& provider,
                       std::chrono::steady_clock::duration length) override;

  // Before a message is even parsed: may this connection push `bytes` more now? A refusal
  // comes with the wait in ms. Parsing costs the shared loop ~5-10 ms per MB
  // (docs/benchmarks.md), so one client's big messages must not monopolise it.
  std::optional<std::chrono::milliseconds> admit_bytes(std::uint64_t connection_id,
                                                       std::size_t bytes);
  // The connection is gone: forget its buckets.
  void forget_connection(std::uint64_t connection_id) {
    rate_limits_.erase(connection_id);
    byte_limits_.erase(connection_id);
  }
  // The breaker guarding a command: "bash", the session's provider for LLM-bound commands,
  // or "" for none (the command table's breaker rule). A session `asker` may not see has no
  // provider: its breaker must not answer for it (that would tell the session exists).
  std::string breaker_key_for(const protocol::Envelope& env,
                              const Principal& asker = local_principal()) const;
  const reliability::CircuitBreakerManager& breakers() const { return breakers_; }

 private:
  // Applies `record` to a breaker and logs a state change.
  void record_breaker(const std::string& key,
                      const std::function<void(reliability::CircuitBreaker&)>& record);
  void schedule_pruning();

  const Clock& clock_;
  Scheduler& scheduler_;
  RateLimit rate_limit_;
  const session::ProviderLookup& providers_;
  reliability::CircuitBreakerManager breakers_;
  std::unordered_map<std::uint64_t, reliability::TokenBucket> rate_limits_;
  std::unordered_map<std::uint64_t, reliability::TokenBucket> byte_limits_;
  Scheduler::Handle pruning_ = 0;
};

}  // namespace pi_server::server
