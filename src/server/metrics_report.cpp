#include "server/metrics_report.hpp"

#include <cmath>

namespace pi_server::server {
using nlohmann::json;
using observability::Histogram;

namespace {

constexpr MetricKind G = MetricKind::gauge;
constexpr MetricKind C = MetricKind::counter;

json number(double v) {
  // Counts stay integers in JSON.
  if (std::floor(v) == v && std::fabs(v) < 9e15) return static_cast<std::int64_t>(v);
  return v;
}

// get_metrics: one JSON object; "a.b" keys nest.
class JsonVisitor : public MetricVisitor {
 public:
  void scalar(const MetricInfo& m, double v) override {
    if (m.json_key.empty()) return;
    // Scaled values are whole milliseconds in get_metrics (uptimeMs, loopStallMaxMs).
    at(m.json_key) = m.json_scale == 1 ? number(v) : json(static_cast<std::int64_t>(v * m.json_scale));
  }
  void labeled(const MetricInfo& m, const std::vector<std::string>&,
               const LabeledSamples& samples) override {
    if (m.json_key.empty()) return;
    json& node = at(m.json_key);
    node = json::object();
    for (const auto& [values, v] : samples) {
      json* slot = &node;
      for (const auto& value : values) slot = &(*slot)[value];
      *slot = number(v * m.json_scale);
    }
  }
  void histogram(const MetricInfo& m, const Histogram& h) override {
    if (!m.json_key.empty()) at(m.json_key) = h.to_json();
  }
  void detail(std::string_view key, json value) override { at(key) = std::move(value); }
  json take() { return std::move(out_); }

 private:
  json& at(std::string_view key) {
    json* node = &out_;
    std::size_t start = 0;
    for (;;) {
      auto dot = key.find('.', start);
      std::string part(key.substr(start, dot == std::string_view::npos ? dot : dot - start));
      node = &(*node)[part];
      if (dot == std::string_view::npos) return *node;
      start = dot + 1;
    }
  }
  json out_ = json::object();
};

// GET /metrics: Prometheus text exposition 0.0.4.
class PrometheusVisitor : public MetricVisitor {
 public:
  void scalar(const MetricInfo& m, double v) override {
    if (m.prom_name.empty()) return;
    w_.family(m.prom_name, kind(m), m.help);
    w_.sample(m.prom_name, {}, v);
  }
  void labeled(const MetricInfo& m, const std::vector<std::string>& names,
               const LabeledSamples& samples) override {
    if (m.prom_name.empty()) return;
    w_.family(m.prom_name, kind(m), m.help);
    for (const auto& [values, v] : samples) {
      observability::Labels labels;
      for (std::size_t i = 0; i < names.size() && i < values.size(); ++i)
        labels.emplace_back(names[i], values[i]);
      w_.sample(m.prom_name, labels, v);
    }
  }
  void histogram(const MetricInfo& m, const Histogram& h) override {
    if (m.prom_name.empty()) return;
    w_.family(m.prom_name, "histogram", m.help);
    w_.histogram(m.prom_name, {}, h);
  }
  void detail(std::string_view, json) override {}
  const std::string& text() const { return w_.text(); }

 private:
  static std::string_view kind(const MetricInfo& m) {
    return m.kind == MetricKind::counter ? "counter" : "gauge";
  }
  observability::PrometheusWriter w_;
};

template <typename Map>
LabeledSamples samples_of(const Map& counts) {
  LabeledSamples out;
  for (const auto& [key, n] : counts) out.push_back({{key}, static_cast<double>(n)});
  return out;
}

double breaker_state_value(reliability::BreakerState s) {
  switch (s) {
    case reliability::BreakerState::closed: return 0;
    case reliability::BreakerState::half_open: return 1;
    case reliability::BreakerState::open: return 2;
  }
  return 0;
}

}  // namespace

void MetricsReport::visit(MetricVisitor& v, const Principal* viewer) const {
  bool sees_all = !viewer || viewer->admin;
  const auto& ps = pipeline_.stats();
  const auto& rs = responder_.stats();
  const auto& relay = sessions_.relay_stats();
  std::size_t agents_running = 0, ui_pending = 0;
  sessions_.for_each([&](const session::Session& s) {
    agents_running += s.agent_running();
    ui_pending += s.pending_ui_ids().size();
  });
  std::size_t queued = 0;
  json queues = json::object();
  connections_.for_each([&](Connection& c) {
    queued += c.queued_bytes();
    if (sees_all || c.principal().name == viewer->name)
      queues["c" + std::to_string(c.id())] = c.queued_bytes();
  });
  auto n = [](auto x) { return static_cast<double>(x); };

  // Sessions and connections.
  v.scalar({"sessionCount", "pi_server_sessions", G, "Sessions that exist now."}, n(sessions_.size()));
  v.scalar({"agentsRunning", "pi_server_agents_running", G, "Sessions whose agent process is running."},
           n(agents_running));
  const auto& hib = sessions_.hibernation();
  v.scalar({"sessionsHibernated", "pi_server_sessions_hibernated", G,
            "Sessions whose agent is stopped while idle (woken by their next command)."},
           n(hib.hibernated_count()));
  v.scalar({"hibernation.hibernations", "pi_server_hibernations_total", C,
            "Idle sessions whose agent was stopped."},
           n(hib.stats().hibernations));
  v.scalar({"hibernation.wakes", "pi_server_wakes_total", C,
            "Hibernated sessions woken by a command."},
           n(hib.stats().wakes));
  v.scalar({"hibernation.wakesFromPool", "pi_server_wakes_from_pool_total", C,
            "Of the wake-ups, those on a warm pool agent (switch_session) instead of a cold start."},
           n(hib.stats().wakes_from_pool));
  v.scalar({"hibernation.wakeFailures", "pi_server_wake_failures_total", C,
            "Wake-ups whose agent did not start or answer (the command got agent_exited)."},
           n(hib.stats().wake_failures));
  v.histogram({"hibernation.wakeTime", "pi_server_wake_seconds", G,
               "From the command that found a session hibernated to its new agent's first answer."},
              hib.stats().wake_time);
  const auto& pool = sessions_.warm_pool();
  v.scalar({"warmPool.ready", "pi_server_warm_agents_ready", G,
            "Pre-started agents ready for create_session."},
           n(pool.ready()));
  v.scalar({"warmPool.hits", "pi_server_warm_pool_hits_total", C,
            "create_session served by a pre-started agent."},
           n(pool.stats().hits));
  v.scalar({"warmPool.misses", "pi_server_warm_pool_misses_total", C,
            "create_session that found no ready pooled agent (spawned one)."},
           n(pool.stats().misses));
  v.scalar({"warmPool.bypassed", "pi_server_warm_pool_bypassed_total", C,
            "create_session whose agent needs its own flags (model, thinking level, name)."},
           n(pool.stats().bypassed));
  v.scalar({"warmPool.failed", "pi_server_warm_pool_failures_total", C,
            "Pooled agents that did not start or exited while waiting."},
           n(pool.stats().failed));
  v.scalar({"connectionCount", "pi_server_connections", G, "Open client connections."},
           n(connections_.size()));
  v.scalar({"connectionsTotal", "pi_server_connections_total", C, "Client connections accepted."},
           n(front_door_.connections_total));
  if (front_door_.listener) {
    auto ls = front_door_.listener();
    v.scalar({"listener.openSockets", "pi_server_sockets_open", G,
              "Sockets the listener holds in any phase (handshake, plain HTTP, WebSocket)."},
             n(ls.open_sockets));
    v.scalar({"listener.acceptedTotal", "pi_server_sockets_accepted_total", C,
              "Sockets the listener accepted and served."},
             n(ls.accepted_total));
    v.scalar({"listener.evictedTotal", "pi_server_sockets_evicted_total", C,
              "Sockets closed in their handshake or plain HTTP phase to make room for new ones."},
             n(ls.evicted_total));
    v.scalar({"listener.shedTotal", "pi_server_sockets_shed_total", C,
              "Sockets accepted on the reserve descriptor and closed at once (out of descriptors)."},
             n(ls.shed_total));
  }
  v.scalar({"pendingUiRequests", "pi_server_pending_ui_requests", G,
            "Extension UI dialogs waiting for a client's answer."},
           n(ui_pending));

  // Commands.
  v.labeled({"commandsByType", "pi_server_commands_received_total", C,
             "Commands parsed, by server command type (session commands together)."},
            {"type"}, samples_of(front_door_.commands_by_type));
  LabeledSamples by_outcome;
  for (const auto& [key, count] : ps.outcomes) by_outcome.push_back({{key.first, key.second}, n(count)});
  v.labeled({"commandsByOutcome", "pi_server_commands_total", C,
             "Responses to admitted commands by command and outcome (success or error code)."},
            {"command", "outcome"}, by_outcome);
  v.histogram({"commandLatency", "pi_server_command_duration_seconds", G,
               "Time from admission to response of admitted commands."},
              ps.latency);
  v.labeled({"errorsByCode", "pi_server_errors_total", C, "Error responses by code (rejections included)."},
            {"code"}, samples_of(rs.errors_by_code));
  v.scalar({"responsesTotal", "pi_server_responses_total", C, "Responses sent."}, n(rs.responses_total));
  v.scalar({"responsesUndeliverable", "pi_server_responses_undeliverable_total", C,
            "Responses whose client had left before they came."},
           n(rs.responses_undeliverable));
  v.scalar({"commandsInFlight", "pi_server_commands_in_flight", G, "Admitted commands not yet answered."},
           n(pipeline_.in_flight()));
  v.scalar({"pipeline.admitted", "pi_server_commands_admitted_total", C, "Commands admitted."},
           n(ps.admitted));
  v.scalar({"pipeline.replayed", "pi_server_replays_total", C,
            "Duplicates answered from the outcome store."},
           n(ps.replayed));
  v.scalar({"pipeline.conflicts", "pi_server_conflicts_total", C,
            "Duplicate ids or idempotency keys with a different payload."},
           n(ps.conflicts));
  v.scalar({"pipeline.laneFull", "pi_server_lane_full_total", C,
            "Commands refused because their lane was full."},
           n(ps.rejected_lane_full));
  v.scalar({"pipeline.timeouts", "pi_server_command_timeouts_total", C, "Commands that timed out."},
           n(ps.timeouts));
  v.scalar({"pipeline.lateReplies", "pi_server_late_replies_total", C,
            "Agent answers that came after the command timed out."},
           n(ps.late_replies));
  v.scalar({"pipeline.dependencyFailures", "pi_server_dependency_failures_total", C,
            "Commands refused because a dependsOn command failed, was unknown or did not finish."},
           n(ps.dependency_failures));
  v.scalar({"pipeline.versionMismatches", "pi_server_version_mismatches_total", C,
            "Commands refused because ifSessionVersion did not match."},
           n(ps.version_mismatches));
  v.scalar({"outcomesStored", "pi_server_outcomes_stored", G, "Outcomes in the replay store."},
           n(outcomes_.size()));
  v.scalar({"outcomesBytes", "pi_server_outcomes_bytes", G,
            "Bytes held by stored outcomes (bounded by --max-outcome-bytes)."},
           n(outcomes_.bytes()));
  v.scalar({"outcomesEvicted", "pi_server_outcomes_evicted_total", C,
            "Outcomes evicted from the replay store."},
           n(outcomes_.evictions()));
  if (store_) {
    v.scalar({"store.queuedWrites", "pi_server_store_queued_writes", G,
              "Writes to pi-server.db queued for the writer thread (sessions, outcome journal)."},
             n(store_->queued()));
    v.scalar({"store.commits", "pi_server_store_commits_total", C,
              "Transactions committed to pi-server.db (one per group-commit batch)."},
             n(store_->commits()));
    v.scalar({"store.errors", "pi_server_store_errors_total", C,
              "Writes or commits to pi-server.db that failed (see db_write_failed in the log)."},
             n(store_->store_errors()));
  }
  json lanes = json::object();
  for (const auto& [lane, depth] : pipeline_.lane_depths()) {
    // Lane names carry session ids: only lanes of sessions the viewer may see (and the
    // shared server lane) are shown to a principal.
    bool visible = sees_all || lane == "server" ||
                   (lane.starts_with("session:") &&
                    sessions_.find_for(lane.substr(std::string_view("session:").size()), *viewer));
    if (visible) lanes[lane] = depth;
  }
  v.detail("laneDepths", std::move(lanes));

  // The event loop and the agents.
  v.histogram({"loopStall", "pi_server_loop_stall_seconds", G,
               "How late the event loop ran a timer due every 250 ms (a blocked loop shows here)."},
              front_door_.loop_stall);
  v.scalar({"loopStallMaxMs", "pi_server_loop_stall_max_seconds", G,
            "The longest loop stall seen since start.", 1000},
           front_door_.loop_stall_max_seconds);
  v.histogram({"agentSpawn", "pi_server_agent_spawn_seconds", G,
               "Time posix_spawn took to start an agent (it runs on the event loop)."},
              relay.spawn_time);
  v.scalar({"agentExits", "pi_server_agent_exits_total", C, "Agent processes that exited."},
           n(relay.agent_exits));
  v.scalar({"agentRestarts", "pi_server_agent_restarts_total", C,
            "Agents restarted after an unexpected exit."},
           n(sessions_.agent_restarts()));
  v.scalar({"agentLinesInvalid", "pi_server_agent_lines_invalid_total", C,
            "Agent stdout lines that were not JSON objects."},
           n(relay.agent_lines_invalid));
  v.scalar({"agentLinesOversize", "pi_server_agent_lines_oversize_total", C,
            "Agent stdout lines over the line limit."},
           n(relay.agent_lines_oversize));
  v.scalar({"agentResponsesUnmatched", "pi_server_agent_responses_unmatched_total", C,
            "Agent answers that matched no pending command (dropped)."},
           n(relay.agent_responses_unmatched));

  // The relay.
  v.scalar({"eventsRelayed", "pi_server_events_relayed_total", C, "Agent events relayed."},
           n(relay.events_relayed));
  v.scalar({"eventBytesRelayed", "pi_server_event_bytes_relayed_total", C,
            "Bytes of event frames queued to clients."},
           n(relay.event_bytes_relayed));
  v.scalar({"eventsDropped", "pi_server_events_dropped_total", C, "Events dropped for slow consumers."},
           n(relay.events_dropped));
  v.scalar({"outboundQueuedBytes", "pi_server_outbound_queue_bytes", G,
            "Bytes queued to clients, all connections."},
           n(queued));
  v.detail("outboundQueues", std::move(queues));

  // The listener's door (auth::RequestGate).
  v.labeled({"authRefusals", "pi_server_auth_refusals_total", C,
             "Requests refused at the door by reason (401 credentials, 403 Origin or Host)."},
            {"reason"}, samples_of(auth_.refusals_by_reason));
  v.scalar({"authAdmitted", "pi_server_auth_admitted_total", C,
            "Requests admitted with valid credentials."},
           n(auth_.admitted_with_credentials));
  v.scalar({"credentialReloads", "pi_server_credential_reloads_total", C,
            "SIGHUP reloads of the credential files that took effect."},
           n(auth_.reloads));
  v.scalar({"credentialReloadFailures", "pi_server_credential_reload_failures_total", C,
            "SIGHUP reloads that failed and kept the previous credentials."},
           n(auth_.reload_failures));

  // Circuit breakers.
  const auto& breakers = admission_.breakers();
  v.detail("circuitBreakers", breakers.snapshot());
  LabeledSamples states, failures;
  for (const auto& [key, b] : breakers.all()) {
    states.push_back({{key}, breaker_state_value(b.state())});
    failures.push_back({{key}, n(b.failures())});
  }
  v.labeled({"", "pi_server_circuit_state", G, "Circuit breaker state: 0 closed, 1 half-open, 2 open."},
            {"provider"}, states);
  v.labeled({"", "pi_server_circuit_failures", G, "Failures counted in the breaker's window."},
            {"provider"}, failures);

  v.scalar({"uptimeMs", "pi_server_uptime_seconds", G, "Seconds since the daemon started.", 1000},
           std::chrono::duration<double>(std::chrono::steady_clock::now() - front_door_.started_at).count());
}

json MetricsReport::to_json(const Principal* viewer) const {
  JsonVisitor v;
  visit(v, viewer);
  return v.take();
}

std::string MetricsReport::to_prometheus() const {
  PrometheusVisitor v;
  visit(v);
  return v.text();
}

json MetricsReport::health(const Principal* viewer) const {
  json issues = json::array();
  const auto& breakers = admission_.breakers();
  for (const auto& [key, b] : breakers.all())
    if (b.state() != reliability::BreakerState::closed)
      issues.push_back("circuit " + key + " is " + std::string(reliability::to_string(b.state())));
  std::size_t down = 0;
  sessions_.for_each([&](const session::Session& s) {
    // A hibernated session has no agent on purpose: its next command starts one.
    if (!s.agent_running() && s.dormancy() == session::Session::Dormancy::awake) {
      if (!viewer || s.visible_to(*viewer))
        issues.push_back("session " + s.id() + " has no running agent");
      ++down;
    }
  });
  // unhealthy: sessions exist and none can work; degraded: something is impaired.
  bool unhealthy = sessions_.size() > 0 && down == sessions_.size();
  std::string status = unhealthy ? "unhealthy" : issues.empty() ? "ok" : "degraded";
  return json{{"healthy", !unhealthy},
              {"status", status},
              {"issues", issues},
              {"hasOpenCircuit", breakers.any_open()},
              {"sessionCount", sessions_.size()},
              {"agentsDown", down},
              {"connectionCount", connections_.size()}};
}

}  // namespace pi_server::server
