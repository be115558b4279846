// Agent supervision (exit, restart with backoff) and the guards around the pipeline:
// per-connection rate limits and the per-provider / bash circuit breakers.
#include <boost/asio/post.hpp>
#include <cstdio>

#include "observability/log.hpp"
#include "server/server.hpp"

namespace pi_server::server {
namespace fs = std::filesystem;
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;

namespace {
// Commands that reach the LLM provider and so are guarded by its circuit breaker.
bool is_llm_bound(std::string_view type) {
  return type == "prompt" || type == "steer" || type == "follow_up" || type == "compact";
}
constexpr std::string_view kBashBreaker = "bash";
}  // namespace

void Server::schedule_breaker_pruning() {
  scheduler_.schedule(std::chrono::seconds(60), [this] {
    breakers_.prune();
    schedule_breaker_pruning();
  });
}

std::optional<Response> Server::admission_check(const reliability::Submission& sub) {
  const Envelope& env = sub.envelope;
  auto bucket = rate_limits_.find(sub.connection_id);
  if (bucket == rate_limits_.end())
    bucket = rate_limits_
                 .try_emplace(sub.connection_id, clock_, options_.rate_limit_per_second,
                              options_.rate_limit_burst)
                 .first;
  if (!bucket->second.try_take()) {
    char text[96];
    std::snprintf(text, sizeof text, "Rate limit exceeded (%g commands/s, burst %g)",
                  options_.rate_limit_per_second, options_.rate_limit_burst);
    auto r = protocol::error_response(env.type, env.id, ErrorCode::rate_limited, text);
    r.data = json{{"retryAfterMs", bucket->second.retry_after().count()}};
    return r;
  }
  std::string breaker_key = breaker_key_for(env);
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

void Server::on_command_finished(const reliability::Submission& sub, const Response& response,
                                 std::chrono::steady_clock::duration took) {
  latency_.observe(std::chrono::duration<double>(took).count());
  if (stdio_draining_) boost::asio::post(io_, [this] { maybe_finish_stdio_drain(); });
  std::string outcome = response.success ? "success"
                        : response.code  ? std::string(to_string(*response.code))
                                         : "error";
  ++outcomes_[{std::string(protocol::command_label(sub.envelope.type)), outcome}];
  // (circuit_open is decided before admission, so it never reaches this hook.)
  const std::string key = breaker_key_for(sub.envelope);
  if (key.empty()) return;
  const auto& type = sub.envelope.type;
  if (type == kBashBreaker && response.code == ErrorCode::timeout) {
    record_breaker(key, [](reliability::CircuitBreaker& b) { b.record_failure(); });
  } else if (response.success && (type == kBashBreaker || type == "compact")) {
    // bash: it finished in time. compact: one LLM call that emits no assistant message, so
    // its success is the provider's success (and ends a half-open probe).
    record_breaker(key, [](reliability::CircuitBreaker& b) { b.record_success(); });
  } else if (!response.success) {
    // Refused or ended without telling either way (the agent was busy, bad input): a
    // half-open probe slot it took is free again.
    breakers_.breaker(key).release_probe();
  }
}

std::string Server::breaker_key_for(const Envelope& env) const {
  if (env.type == kBashBreaker) return std::string(kBashBreaker);
  if (!is_llm_bound(env.type) || !env.session_id) return {};
  auto it = sessions_.find(*env.session_id);
  return it == sessions_.end() ? std::string() : it->second->provider();
}

void Server::record_breaker(const std::string& key,
                            const std::function<void(reliability::CircuitBreaker&)>& record) {
  auto& b = breakers_.breaker(key);
  auto before = b.state();
  record(b);
  if (b.state() != before)
    log::warn("circuit_state", {{"breaker", key},
                                {"from", std::string(reliability::to_string(before))},
                                {"to", std::string(reliability::to_string(b.state()))}});
}

void Server::on_provider_result(session::Session&, const std::string& provider,
                                ProviderResult result) {
  if (provider.empty()) return;
  record_breaker(provider, [result](reliability::CircuitBreaker& b) {
    switch (result) {
      case ProviderResult::success: b.record_success(); break;
      case ProviderResult::failure: b.record_failure(); break;
      case ProviderResult::aborted: b.release_probe(); break;
    }
  });
}

void Server::on_run_finished(session::Session&, const std::string& provider,
                             std::chrono::steady_clock::duration length) {
  if (!provider.empty() && length > breakers_.options().slow_call)
    record_breaker(provider, [](reliability::CircuitBreaker& b) { b.record_slow(); });
}

Server::~Server() {
  for (auto& [id, s] : sessions_) s->stop([] {});
}

// ---------------------------------------------------------------- agent supervision

void Server::on_agent_exited(session::Session& session, const agent::ExitStatus& status) {
  auto it = sessions_.find(session.id());
  std::shared_ptr<session::Session> owned =
      it != sessions_.end() && it->second.get() == &session ? it->second : nullptr;
  std::chrono::milliseconds delay{0};
  bool restarting = owned && session.ready() && options_.agent.restart && !draining_ &&
                    session.claim_restart(delay);
  json data = {{"sessionId", session.id()}, {"restarting", restarting}};
  if (status.exit_code) data["exitCode"] = *status.exit_code;
  if (status.signal) data["signal"] = *status.signal;
  session.send_to_subscribers(make_frame(protocol::server_event("agent_exited", data)));
  if (restarting) schedule_restart(owned, delay);
  maybe_finish_stdio_drain();
}

void Server::schedule_restart(const std::shared_ptr<session::Session>& session,
                              std::chrono::milliseconds delay) {
  log::info("agent_restart_scheduled", {{"session", session->id()}, {"delayMs", delay.count()}});
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
  std::weak_ptr<session::Session> weak = session;
  timer->async_wait([this, timer, weak](boost::system::error_code ec) {
    auto s = weak.lock();
    if (ec || !s || draining_) return;
    auto it = sessions_.find(s->id());
    if (it == sessions_.end() || it->second != s) return;  // deleted meanwhile
    if (auto started = s->start_agent(); !started) {
      std::chrono::milliseconds next{0};
      bool again = s->claim_restart(next);
      s->send_to_subscribers(make_frame(protocol::server_event(
                                 "agent_exited", {{"sessionId", s->id()},
                                                  {"restarting", again},
                                                  {"error", started.message()}})));
      if (again) schedule_restart(s, next);
      return;
    }
    ++agent_restarts_;
    s->send_to_subscribers(make_frame(protocol::server_event(
                               "agent_restarted", {{"sessionId", s->id()},
                                                   {"pid", *s->agent_pid()},
                                                   {"restarts", s->restarts_total()}})));
  });
}

}  // namespace pi_server::server
