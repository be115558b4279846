#include "server/admission_policy.hpp"

#include <cstdio>

#include "observability/log.hpp"

namespace pi_server::server {
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;

namespace {
constexpr std::string_view kBashBreaker = "bash";
// Closed breakers idle past their TTL are dropped this often.
constexpr std::chrono::seconds kPruneEvery{60};
}  // namespace

AdmissionPolicy::AdmissionPolicy(const Clock& clock, Scheduler& scheduler, RateLimit rate_limit,
                                 BreakerOptions breaker_options,
                                 const session::ProviderLookup& providers)
    : clock_(clock),
      scheduler_(scheduler),
      rate_limit_(rate_limit),
      providers_(providers),
      breakers_(clock, breaker_options) {
  schedule_pruning();
}

AdmissionPolicy::~AdmissionPolicy() { scheduler_.cancel(pruning_); }

void AdmissionPolicy::schedule_pruning() {
  pruning_ = scheduler_.schedule(kPruneEvery, [this] {
    breakers_.prune();
    schedule_pruning();
  });
}

std::optional<std::chrono::milliseconds> AdmissionPolicy::admit_bytes(std::uint64_t connection_id,
                                                                      std::size_t bytes) {
  auto bucket = byte_limits_.find(connection_id);
  if (bucket == byte_limits_.end())
    bucket = byte_limits_
                 .try_emplace(connection_id, clock_, rate_limit_.bytes_per_second,
                              rate_limit_.bytes_burst)
                 .first;
  auto n = static_cast<double>(bytes);
  if (bucket->second.try_take(n)) return std::nullopt;
  return bucket->second.retry_after(n);
}

std::optional<Response> AdmissionPolicy::admit(const reliability::Submission& sub) {
  const Envelope& env = sub.envelope;
  auto bucket = rate_limits_.find(sub.connection_id);
  if (bucket == rate_limits_.end())
    bucket = rate_limits_
                 .try_emplace(sub.connection_id, clock_, rate_limit_.per_second, rate_limit_.burst)
                 .first;
  if (!bucket->second.try_take()) {
    char text[96];
    std::snprintf(text, sizeof text, "Rate limit exceeded (%g commands/s, burst %g)",
                  rate_limit_.per_second, rate_limit_.burst);
    auto r = protocol::error_response(env.type, env.id, ErrorCode::rate_limited, text);
    r.data = json{{"retryAfterMs", bucket->second.retry_after().count()}};
    return r;
  }
  // Last: a half-open breaker's check takes a probe slot, which only an admitted command
  // may hold.
  std::string breaker_key = breaker_key_for(env, sub.principal);
  if (!breaker_key.empty()) {
    if (auto rejection = breakers_.check(breaker_key)) {
      auto r = protocol::error_response(env.type, env.id, ErrorCode::circuit_open, rejection->message);
      r.data = json{{"retryAfterMs", rejection->retry_after.count()}, {"provider", breaker_key}};
      r.session_id = env.session_id;
      return r;
    }
  }
  return std::nullopt;
}

void AdmissionPolicy::on_finished(const reliability::Submission& sub, const Response& response) {
  // (circuit_open is decided before admission, so it never reaches here.)
  const std::string key = breaker_key_for(sub.envelope, sub.principal);
  if (key.empty()) return;
  const auto rule = sub.envelope.spec->breaker;
  if (rule == protocol::BreakerRule::bash && response.code == ErrorCode::timeout) {
    record_breaker(key, [](reliability::CircuitBreaker& b) { b.record_failure(); });
  } else if (response.success && (rule == protocol::BreakerRule::bash ||
                                   rule == protocol::BreakerRule::provider_call)) {
    // bash: it finished in time. compact: one LLM call that emits no assistant message, so
    // its success is the provider's success (and ends a half-open probe).
    record_breaker(key, [](reliability::CircuitBreaker& b) { b.record_success(); });
  } else if (!response.success) {
    // Refused or ended without telling either way (the agent was busy, bad input): a
    // half-open probe slot it took is free again.
    breakers_.breaker(key).release_probe();
  }
}

std::string AdmissionPolicy::breaker_key_for(const Envelope& env, const Principal& asker) const {
  switch (env.spec->breaker) {
    case protocol::BreakerRule::none: return {};
    case protocol::BreakerRule::bash: return std::string(kBashBreaker);
    case protocol::BreakerRule::provider:
    case protocol::BreakerRule::provider_call:
      return env.session_id ? providers_.provider_of(*env.session_id, asker) : std::string();
  }
  return {};
}

void AdmissionPolicy::record_breaker(
    const std::string& key, const std::function<void(reliability::CircuitBreaker&)>& record) {
  auto& b = breakers_.breaker(key);
  auto before = b.state();
  record(b);
  if (b.state() != before)
    log::warn("circuit_state", {{"breaker", key},
                                {"from", std::string(reliability::to_string(before))},
                                {"to", std::string(reliability::to_string(b.state()))}});
}

void AdmissionPolicy::on_provider_result(const std::string& provider,
                                         session::ProviderResult result) {
  if (provider.empty()) return;
  record_breaker(provider, [result](reliability::CircuitBreaker& b) {
    switch (result) {
      case session::ProviderResult::success: b.record_success(); break;
      case session::ProviderResult::failure: b.record_failure(); break;
      case session::ProviderResult::aborted: b.release_probe(); break;
    }
  });
}

void AdmissionPolicy::on_run_finished(const std::string& provider,
                                      std::chrono::steady_clock::duration length) {
  if (!provider.empty() && length > breakers_.options().slow_call)
    record_breaker(provider, [](reliability::CircuitBreaker& b) { b.record_slow(); });
}

}  // namespace pi_server::server
