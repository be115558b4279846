// What an operator sees: get_metrics, health_check, and the HTTP routes (/healthz, /readyz,
// /metrics), all rendered from the same in-memory numbers.
#include "server/server.hpp"

namespace pi_server::server {
namespace fs = std::filesystem;
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;

json Server::metrics_json() const {
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started_at_)
                    .count();
  json by_outcome = json::object();
  for (const auto& [key, n] : outcomes_) by_outcome[key.first][key.second] = n;
  std::size_t queued = 0;
  json queues = json::object();
  connections_.for_each([&](Connection& c) {
    queued += c.queued_bytes();
    queues["c" + std::to_string(c.id())] = c.queued_bytes();
  });
  std::size_t agents_running = 0, ui_pending = 0;
  for (const auto& [id, s] : sessions_) {
    agents_running += s->agent_running();
    ui_pending += s->pending_ui_ids().size();
  }
  const auto& ps = pipeline_.stats();
  return json{
      {"sessionCount", sessions_.size()},
      {"agentsRunning", agents_running},
      {"connectionCount", connections_.size()},
      {"connectionsTotal", connections_total_},
      {"commandsByType", commands_by_type_},
      {"commandsByOutcome", by_outcome},
      {"commandLatency", latency_.to_json()},
      {"loopStall", loop_stall_.to_json()},
      {"loopStallMaxMs", static_cast<std::int64_t>(loop_stall_max_seconds_ * 1000)},
      {"agentSpawn", relay_stats_.spawn_time.to_json()},
      {"errorsByCode", errors_by_code_},
      {"responsesTotal", responses_total_},
      {"responsesUndeliverable", responses_undeliverable_},
      {"eventsRelayed", relay_stats_.events_relayed},
      {"eventBytesRelayed", relay_stats_.event_bytes_relayed},
      {"eventsDropped", relay_stats_.events_dropped},
      {"agentLinesInvalid", relay_stats_.agent_lines_invalid},
      {"agentLinesOversize", relay_stats_.agent_lines_oversize},
      {"agentResponsesUnmatched", relay_stats_.agent_responses_unmatched},
      {"agentExits", relay_stats_.agent_exits},
      {"agentRestarts", agent_restarts_},
      {"pendingUiRequests", ui_pending},
      {"circuitBreakers", breakers_.snapshot()},
      {"outboundQueuedBytes", queued},
      {"outboundQueues", queues},
      {"outcomesStored", pipeline_.outcomes().size()},
      {"outcomesEvicted", pipeline_.outcomes().evictions()},
      {"commandsInFlight", pipeline_.in_flight()},
      {"laneDepths", pipeline_.lane_depths()},
      {"pipeline", {{"admitted", ps.admitted},
                    {"replayed", ps.replayed},
                    {"conflicts", ps.conflicts},
                    {"laneFull", ps.rejected_lane_full},
                    {"timeouts", ps.timeouts},
                    {"lateReplies", ps.late_replies},
                    {"dependencyFailures", ps.dependency_failures},
                    {"versionMismatches", ps.version_mismatches}}},
      {"uptimeMs", uptime},
  };
}

json Server::health_json() const {
  json issues = json::array();
  for (const auto& [key, b] : breakers_.all())
    if (b.state() != reliability::BreakerState::closed)
      issues.push_back("circuit " + key + " is " + std::string(reliability::to_string(b.state())));
  std::size_t down = 0;
  for (const auto& [id, s] : sessions_) {
    if (!s->agent_running()) {
      issues.push_back("session " + id + " has no running agent");
      ++down;
    }
  }
  // unhealthy: sessions exist and none can work; degraded: something is impaired.
  bool unhealthy = !sessions_.empty() && down == sessions_.size();
  std::string status = unhealthy ? "unhealthy" : issues.empty() ? "ok" : "degraded";
  return json{{"healthy", !unhealthy},
              {"status", status},
              {"issues", issues},
              {"hasOpenCircuit", breakers_.any_open()},
              {"sessionCount", sessions_.size()},
              {"agentsDown", down},
              {"connectionCount", connections_.size()}};
}

void Server::get_metrics(std::uint64_t conn, const Envelope& env, Reply reply) {
  reply(protocol::success_response(env.type, env.id, metrics_json()));
}

void Server::health_check(std::uint64_t, const Envelope& env, Reply reply) {
  reply(protocol::success_response(env.type, env.id, health_json()));
}

// ---------------------------------------------------------------- HTTP

std::string Server::prometheus_text() const {
  using observability::Labels;
  observability::PrometheusWriter w;
  auto gauge = [&](const char* name, const char* help, double v) {
    w.family(name, "gauge", help);
    w.sample(name, {}, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    w.family(name, "counter", help);
    w.sample(name, {}, v);
  };
  std::size_t agents_running = 0, queued = 0;
  for (const auto& [id, s] : sessions_) agents_running += s->agent_running();
  connections_.for_each([&](Connection& c) { queued += c.queued_bytes(); });
  const auto& ps = pipeline_.stats();

  gauge("pi_server_sessions", "Sessions that exist now.", static_cast<double>(sessions_.size()));
  gauge("pi_server_agents_running", "Sessions whose agent process is running.",
        static_cast<double>(agents_running));
  gauge("pi_server_connections", "Open client connections.", static_cast<double>(connections_.size()));
  counter("pi_server_connections_total", "Client connections accepted.",
          static_cast<double>(connections_total_));
  w.family("pi_server_commands_total", "counter",
           "Responses to admitted commands by command and outcome (success or error code).");
  for (const auto& [key, n] : outcomes_)
    w.sample("pi_server_commands_total", {{"command", key.first}, {"outcome", key.second}},
             static_cast<double>(n));
  w.family("pi_server_command_duration_seconds", "histogram",
           "Time from admission to response of admitted commands.");
  w.histogram("pi_server_command_duration_seconds", {}, latency_);
  w.family("pi_server_loop_stall_seconds", "histogram",
           "How late the event loop ran a timer due every 250 ms (a blocked loop shows here).");
  w.histogram("pi_server_loop_stall_seconds", {}, loop_stall_);
  w.family("pi_server_agent_spawn_seconds", "histogram",
           "Time posix_spawn took to start an agent (it runs on the event loop).");
  w.histogram("pi_server_agent_spawn_seconds", {}, relay_stats_.spawn_time);
  w.family("pi_server_errors_total", "counter", "Error responses by code (rejections included).");
  for (const auto& [code, n] : errors_by_code_)
    w.sample("pi_server_errors_total", {{"code", code}}, static_cast<double>(n));
  counter("pi_server_replays_total", "Duplicates answered from the outcome store.",
          static_cast<double>(ps.replayed));
  counter("pi_server_command_timeouts_total", "Commands that timed out.", static_cast<double>(ps.timeouts));
  counter("pi_server_late_replies_total", "Agent answers that came after the command timed out.",
          static_cast<double>(ps.late_replies));
  gauge("pi_server_commands_in_flight", "Admitted commands not yet answered.",
        static_cast<double>(pipeline_.in_flight()));
  gauge("pi_server_outcomes_stored", "Outcomes in the replay store.",
        static_cast<double>(pipeline_.outcomes().size()));
  counter("pi_server_outcomes_evicted_total", "Outcomes evicted from the replay store.",
          static_cast<double>(pipeline_.outcomes().evictions()));
  counter("pi_server_events_relayed_total", "Agent events relayed.",
          static_cast<double>(relay_stats_.events_relayed));
  counter("pi_server_event_bytes_relayed_total", "Bytes of event frames queued to clients.",
          static_cast<double>(relay_stats_.event_bytes_relayed));
  counter("pi_server_events_dropped_total", "Events dropped for slow consumers.",
          static_cast<double>(relay_stats_.events_dropped));
  gauge("pi_server_outbound_queue_bytes", "Bytes queued to clients, all connections.",
        static_cast<double>(queued));
  counter("pi_server_agent_exits_total", "Agent processes that exited.",
          static_cast<double>(relay_stats_.agent_exits));
  counter("pi_server_agent_restarts_total", "Agents restarted after an unexpected exit.",
          static_cast<double>(agent_restarts_));
  counter("pi_server_agent_lines_invalid_total", "Agent stdout lines that were not JSON objects.",
          static_cast<double>(relay_stats_.agent_lines_invalid));
  counter("pi_server_agent_lines_oversize_total", "Agent stdout lines over the line limit.",
          static_cast<double>(relay_stats_.agent_lines_oversize));
  w.family("pi_server_circuit_state", "gauge", "Circuit breaker state: 0 closed, 1 half-open, 2 open.");
  for (const auto& [key, b] : breakers_.all()) {
    auto st = b.state();
    w.sample("pi_server_circuit_state", {{"provider", key}},
             st == reliability::BreakerState::closed ? 0 : st == reliability::BreakerState::half_open ? 1 : 2);
  }
  w.family("pi_server_circuit_failures", "gauge", "Failures counted in the breaker's window.");
  for (const auto& [key, b] : breakers_.all())
    w.sample("pi_server_circuit_failures", {{"provider", key}}, static_cast<double>(b.failures()));
  gauge("pi_server_uptime_seconds", "Seconds since the daemon started.",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count());
  return w.text();
}

HttpAnswer Server::handle_http(std::string_view method, std::string_view target,
                               std::string_view) {
  auto path = target.substr(0, target.find('?'));
  HttpAnswer a;
  bool known = path == "/healthz" || path == "/readyz" || path == "/metrics";
  if (known && method != "GET" && method != "HEAD") {
    a.status = 405;
    a.body = R"({"error":"method not allowed"})";
    return a;
  }
  if (path == "/healthz") {
    a.status = 200;
    a.body = R"({"status":"ok"})";
  } else if (path == "/readyz") {
    bool ok = ready_ && !draining_;
    a.status = ok ? 200 : 503;
    a.body = ok ? R"({"status":"ready"})" : (draining_ ? R"({"status":"draining"})"
                                                       : R"({"status":"starting"})");
  } else if (path == "/metrics") {
    a.status = 200;
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = prometheus_text();
  }
  return a;
}

}  // namespace pi_server::server
