#include "server/server.hpp"

#include <boost/asio/post.hpp>
#include <filesystem>
#include <random>
#include <regex>
#include <system_error>

#include "observability/log.hpp"

namespace pi_server::server {
namespace fs = std::filesystem;
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;

namespace {

constexpr std::string_view kThinkingLevels[] = {"off", "minimal", "low", "medium", "high", "xhigh"};

// Client-chosen session ids become directory names: keep them to a safe alphabet.
bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id.front() == '.') return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

std::string random_session_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[40];
  std::snprintf(buf, sizeof buf, "s-%016llx%08llx", static_cast<unsigned long long>(dist(rng)),
                static_cast<unsigned long long>(dist(rng) & 0xffffffffu));
  return buf;
}

// Optional string field: absent is fine, present must be a string.
bool read_string(const json& body, const char* key, std::string& out, std::string& error) {
  auto it = body.find(key);
  if (it == body.end()) return true;
  if (!it->is_string()) {
    error = std::string("Field '") + key + "' must be a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

std::string model_string(const json& model) {
  if (model.is_object() && model.contains("provider") && model.contains("id") &&
      model["provider"].is_string() && model["id"].is_string())
    return model["provider"].get<std::string>() + "/" + model["id"].get<std::string>();
  return {};
}

}  // namespace

Server::Server(boost::asio::io_context& io, ServerOptions options,
               reliability::PipelineOptions pipeline_options,
               reliability::BreakerOptions breaker_options)
    : io_(io),
      options_(std::move(options)),
      scheduler_(io),
      pipeline_(clock_, scheduler_, *this, *this, pipeline_options),
      breakers_(clock_, breaker_options),
      max_pending_per_lane_(pipeline_options.max_pending_per_lane),
      started_at_(std::chrono::steady_clock::now()),
      drain_timer_(io) {
  pipeline_.set_admission_check(
      [this](const reliability::Submission& s) { return admission_check(s); });
  pipeline_.set_finished_hook([this](const reliability::Submission& s, const Response& r,
                                     std::chrono::steady_clock::duration took) {
    on_command_finished(s, r, took);
  });
  schedule_breaker_pruning();
}

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
    auto r = protocol::error_response(env.type, env.id, ErrorCode::rate_limited,
                                      "Rate limit exceeded (" +
                                          std::to_string(static_cast<int>(options_.rate_limit_per_second)) +
                                          " commands/s, burst " +
                                          std::to_string(static_cast<int>(options_.rate_limit_burst)) + ")");
    r.data = json{{"retryAfterMs", bucket->second.retry_after().count()}};
    return r;
  }
  std::string breaker_key;
  if (is_llm_bound(env.type) && env.session_id) {
    auto it = sessions_.find(*env.session_id);
    if (it != sessions_.end()) breaker_key = it->second->provider();
  } else if (env.type == kBashBreaker) {
    breaker_key = kBashBreaker;
  }
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
  const auto& type = sub.envelope.type;
  if (type == kBashBreaker) {
    if (response.code == ErrorCode::timeout) {
      breakers_.breaker(std::string(kBashBreaker)).record_failure();
    } else if (response.success) {
      breakers_.breaker(std::string(kBashBreaker)).record_success();
    }
  } else if (is_llm_bound(type) && !response.success && sub.envelope.session_id &&
             response.code != ErrorCode::circuit_open) {
    // The agent refused it (busy, bad input): it never reached the provider, so a
    // half-open probe slot it took is free again.
    auto it = sessions_.find(*sub.envelope.session_id);
    if (it != sessions_.end() && !it->second->provider().empty())
      breakers_.breaker(it->second->provider()).release_probe();
  }
}

void Server::on_provider_result(session::Session&, const std::string& provider,
                                ProviderResult result) {
  if (provider.empty()) return;
  auto& b = breakers_.breaker(provider);
  auto before = b.state();
  switch (result) {
    case ProviderResult::success: b.record_success(); break;
    case ProviderResult::failure: b.record_failure(); break;
    case ProviderResult::aborted: b.release_probe(); break;
  }
  if (b.state() != before)
    log::warn("circuit_state", {{"provider", provider},
                                {"from", std::string(reliability::to_string(before))},
                                {"to", std::string(reliability::to_string(b.state()))}});
}

void Server::on_run_finished(session::Session&, const std::string& provider,
                             std::chrono::steady_clock::duration length) {
  if (!provider.empty() && length > breakers_.options().slow_call)
    breakers_.breaker(provider).record_slow();
}

Server::~Server() {
  for (auto& [id, s] : sessions_) s->stop([] {});
}

// ---------------------------------------------------------------- transport events

void Server::on_open(const std::shared_ptr<Connection>& connection) {
  if (draining_) {
    connection->close_gracefully();
    return;
  }
  if (connections_.size() >= options_.max_connections) {
    auto r = protocol::error_response("", std::nullopt, ErrorCode::limit_reached,
                                      "Too many connections (max " +
                                          std::to_string(options_.max_connections) + ")");
    ++errors_by_code_["limit_reached"];
    connection->send_control(make_frame(protocol::serialize(r)));
    connection->close_gracefully();
    return;
  }
  connections_.add(connection);
  ++connections_total_;
  json limits = {{"maxFrameBytes", options_.connection.max_frame_bytes},
                 {"maxSessions", options_.max_sessions},
                 {"maxConnections", options_.max_connections},
                 {"maxPendingPerLane", max_pending_per_lane_},
                 {"rateLimit", {{"commandsPerSecond", options_.rate_limit_per_second},
                                {"burst", options_.rate_limit_burst}}},
                 {"maxAgentLineBytes", options_.agent.max_line_bytes}};
  json data = {{"serverVersion", PI_SERVER_VERSION},
               {"protocolVersion", kProtocolVersion},
               {"transports", transports_},
               {"connectionId", "c" + std::to_string(connection->id())},
               {"limits", limits}};
  connection->send_control(make_frame(protocol::server_event("server_ready", data)));
  log::debug("connection_opened",
             {{"conn", connection->id()}, {"transport", std::string(connection->transport())}});
}

void Server::on_close(Connection& connection) {
  auto id = connection.id();
  for (auto& [sid, s] : sessions_) s->unsubscribe(id);
  connections_.remove(id);
  lifecycle_opt_out_.erase(id);
  rate_limits_.erase(id);
  if (!options_.listen && connection.transport() == "stdio" && !draining_) {
    // stdio-only: without its one client the daemon has nobody to serve.
    boost::asio::post(io_, [this] { shutdown("stdio closed", [this] { io_.stop(); }); });
  }
  log::debug("connection_closed", {{"conn", id}});
  if (draining_ && connections_.size() == 0 && shutdown_done_ && stopping_.empty())
    finish_shutdown();
}

void Server::on_input_closed(Connection& connection) {
  log::info("stdin_closed", {{"conn", connection.id()}});
  if (options_.listen || draining_) return;
  // stdio only: finish what is in flight (answers and running turns), then exit.
  stdio_draining_ = true;
  drain_timer_.expires_after(options_.drain_timeout);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !draining_) shutdown("stdin closed (drain timeout)", [this] { io_.stop(); });
  });
  maybe_finish_stdio_drain();
}

void Server::maybe_finish_stdio_drain() {
  if (!stdio_draining_ || draining_) return;
  if (pipeline_.in_flight() > 0) return;
  for (auto& [id, s] : sessions_)
    if (!s->quiet()) return;
  drain_timer_.cancel();
  shutdown("stdin closed", [this] { io_.stop(); });
}

void Server::on_rejected_message(Connection& connection, ErrorCode code, std::string_view reason) {
  respond(connection, protocol::error_response("", std::nullopt, code, std::string(reason)));
}

// ---------------------------------------------------------------- the pipeline

void Server::on_message(Connection& connection, std::string_view text) {
  auto parsed = protocol::parse_envelope(text);
  if (!parsed) {
    ++commands_by_type_["invalid"];
    respond(connection, protocol::error_response(parsed.error.type.value_or(""), parsed.error.id,
                                                 parsed.error.code, parsed.error.message));
    return;
  }
  const Envelope& env = *parsed.envelope;
  ++commands_by_type_[env.family == protocol::CommandFamily::server ? env.type : "session_command"];
  if (draining_) {
    respond(connection, protocol::error_response(env.type, env.id, ErrorCode::shutting_down,
                                                 "The server is shutting down"));
    return;
  }
  reliability::Submission submission;
  submission.envelope = std::move(*parsed.envelope);
  submission.connection_id = connection.id();
  submission.lifecycle_events = !lifecycle_opt_out_.count(connection.id());
  pipeline_.submit(std::move(submission));
}

void Server::execute(const reliability::Submission& submission, Reply reply) {
  static const std::unordered_map<std::string_view, Handler> kHandlers = {
      {"create_session", &Server::create_session},
      {"delete_session", &Server::delete_session},
      {"list_sessions", &Server::list_sessions},
      {"switch_session", &Server::switch_session},
      {"unsubscribe", &Server::unsubscribe},
      {"get_metrics", &Server::get_metrics},
      {"health_check", &Server::health_check},
      {"get_command_history", &Server::get_command_history},
      {"set_lifecycle_events", &Server::set_lifecycle_events},
  };
  const Envelope& env = submission.envelope;
  if (draining_) {
    // Admitted before the drain began, started after: the sessions are going away.
    auto r = protocol::error_response(env.type, env.id, ErrorCode::shutting_down,
                                      "The server is shutting down");
    r.session_id = env.session_id;
    return reply(r);
  }
  if (auto it = kHandlers.find(env.type); it != kHandlers.end()) {
    (this->*(it->second))(submission.connection_id, env, std::move(reply));
  } else {
    relay_session_command(submission.connection_id, env, std::move(reply));
  }
}

std::optional<std::uint64_t> Server::session_version(const std::string& session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return std::nullopt;
  return it->second->version();
}

void Server::deliver(std::uint64_t connection_id, const Response& response) {
  respond_to(connection_id, response);
}

void Server::deliver_event(std::uint64_t connection_id, std::string_view type, const json& data) {
  if (Connection* c = connections_.find(connection_id))
    c->send_control(make_frame(protocol::server_event(type, data)));
}

void Server::respond(Connection& connection, const Response& response) {
  ++responses_total_;
  if (response.code) ++errors_by_code_[std::string(to_string(*response.code))];
  connection.send_control(make_frame(protocol::serialize(response)));
}

void Server::respond_to(std::uint64_t connection_id, const Response& response) {
  if (Connection* c = connections_.find(connection_id)) {
    respond(*c, response);
  } else {
    // The client left before its answer came; the answer has nowhere to go.
    ++responses_undeliverable_;
  }
}

void Server::broadcast(const Frame& frame) {
  connections_.for_each([&](Connection& c) { c.send_control(frame); });
}

// ---------------------------------------------------------------- server commands

fs::path Server::prepare_session_dirs(const std::string& session_id) {
  // <state>/sessions/<id>/ holds pi's session files; <id>/agent/ is this session's own pi
  // agent dir, so settings pi persists (set_auto_retry, set_steering_mode...) stay private
  // to the session, while models.json and auth.json are links to the shared copies.
  fs::path base = options_.state_dir / "sessions" / session_id;
  fs::path agent_dir = base / "agent";
  std::error_code ec;
  fs::create_directories(agent_dir, ec);
  for (const char* shared : {"models.json", "auth.json"}) {
    fs::path target = options_.state_dir / "agent" / shared;
    fs::path link = agent_dir / shared;
    if (fs::exists(target, ec) && !fs::exists(fs::symlink_status(link, ec)))
      fs::create_symlink(target, link, ec);
  }
  return base;
}

void Server::create_session(std::uint64_t conn, const Envelope& env, Reply reply) {
  const json& body = env.body;
  std::string error;
  agent::SessionLaunch launch;
  std::string session_id = env.session_id.value_or("");
  if (!read_string(body, "cwd", launch.cwd, error) ||
      !read_string(body, "model", launch.model, error) ||
      !read_string(body, "thinkingLevel", launch.thinking_level, error) ||
      !read_string(body, "name", launch.name, error)) {
    return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command, error));
  }
  if (!session_id.empty() && !valid_session_id(session_id))
    return reply(protocol::error_response(
                          env.type, env.id, ErrorCode::invalid_command,
                          "Field 'sessionId' may hold only letters, digits, '-', '_' and '.' "
                          "(at most 128, not starting with '.')"));
  if (launch.cwd.empty()) {
    std::error_code ec;
    launch.cwd = fs::current_path(ec).string();
  } else {
    std::error_code ec;
    if (!fs::path(launch.cwd).is_absolute() || !fs::is_directory(launch.cwd, ec))
      return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command,
                                                 "Field 'cwd' must be an existing absolute "
                                                 "directory"));
  }
  if (!launch.model.empty()) {
    auto slash = launch.model.find('/');
    if (slash == 0 || slash == std::string::npos || slash + 1 == launch.model.size())
      return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command,
                                                 "Field 'model' must look like 'provider/id'"));
  }
  if (!launch.thinking_level.empty() &&
      std::find(std::begin(kThinkingLevels), std::end(kThinkingLevels), launch.thinking_level) ==
          std::end(kThinkingLevels))
    return reply(protocol::error_response(
                          env.type, env.id, ErrorCode::invalid_command,
                          "Field 'thinkingLevel' must be one of off, minimal, low, medium, high, "
                          "xhigh"));
  if (session_id.empty()) {
    do session_id = random_session_id();
    while (sessions_.count(session_id));
  }
  if (sessions_.count(session_id))
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_exists,
                                               "Session already exists: " + session_id));
  if (sessions_.size() + stopping_.size() >= options_.max_sessions)
    return reply(protocol::error_response(env.type, env.id, ErrorCode::limit_reached,
                                               "Too many sessions (max " +
                                                   std::to_string(options_.max_sessions) + ")"));

  fs::path dir = prepare_session_dirs(session_id);
  launch.session_dir = dir;
  launch.agent_dir = dir / "agent";
  auto session = std::make_shared<session::Session>(io_, session_id, launch, options_.agent,
                                                    connections_, relay_stats_, *this);
  if (auto failure = session->start_agent()) {
    auto r = protocol::error_response(env.type, env.id, ErrorCode::agent_exited, *failure);
    r.session_id = session_id;
    return reply(r);
  }
  sessions_.emplace(session_id, session);
  session->subscribe(conn);

  // The session is ready when its agent answers a first get_state: that proves the agent
  // runs and tells us its session file and model.
  Envelope probe;
  probe.type = "get_state";
  probe.body = json{{"type", "get_state"}};
  std::uint64_t conn_id = conn;
  std::weak_ptr<session::Session> weak = session;
  session->relay(probe, [this, conn_id, weak, env_type = env.type, env_id = env.id, session_id,
                         reply](Response state) {
    auto s = weak.lock();
    if (!state.success || !s) {
      auto r = protocol::error_response(env_type, env_id, ErrorCode::agent_exited,
                                        "The agent did not start: " +
                                            state.error.value_or("no answer"));
      r.session_id = session_id;
      reply(r);
      // Not from inside the session's own callback.
      boost::asio::post(io_, [this, session_id, weak] {
        auto it = sessions_.find(session_id);
        if (it != sessions_.end() && it->second == weak.lock()) sessions_.erase(it);
      });
      return;
    }
    s->mark_ready();
    const json& data = state.data ? *state.data : json::object();
    json info = s->summary();
    if (data.contains("sessionFile")) info["sessionFile"] = data["sessionFile"];
    if (data.contains("sessionId")) info["agentSessionId"] = data["sessionId"];
    if (auto m = data.find("model"); m != data.end()) {
      std::string model = model_string(*m);
      if (!model.empty()) info["model"] = model;
    }
    if (data.contains("thinkingLevel")) info["thinkingLevel"] = data["thinkingLevel"];
    Response r = protocol::success_response(env_type, env_id,
                                            json{{"sessionId", session_id}, {"sessionInfo", info}});
    r.session_id = session_id;
    reply(r);
    broadcast(make_frame(protocol::server_event("session_created",
                                                {{"sessionId", session_id}, {"sessionInfo", info}})));
    log::info("session_created", {{"session", session_id}, {"conn", conn_id}});
  });
}

void Server::delete_session(std::uint64_t conn, const Envelope& env, Reply reply) {
  auto it = sessions_.find(*env.session_id);
  if (it == sessions_.end())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                               "Session not found: " + *env.session_id));
  auto session = it->second;
  sessions_.erase(it);
  stopping_.emplace(session.get(), session);
  std::uint64_t conn_id = conn;
  auto* raw = session.get();
  std::string session_id = *env.session_id;
  // Answer once the agent is gone, so "deleted" means no process is left.
  session->stop([this, raw, conn_id, session_id, env_type = env.type, env_id = env.id, reply] {
    Response r = protocol::success_response(env_type, env_id, json{{"sessionId", session_id}});
    r.session_id = session_id;
    reply(r);
    broadcast(make_frame(protocol::server_event("session_deleted", {{"sessionId", session_id}})));
    log::info("session_deleted", {{"session", session_id}, {"conn", conn_id}});
    boost::asio::post(io_, [this, raw] {
      stopping_.erase(raw);
      if (draining_ && stopping_.empty()) finish_shutdown();
    });
  });
}

void Server::list_sessions(std::uint64_t conn, const Envelope& env, Reply reply) {
  json list = json::array();
  for (auto& [id, s] : sessions_) list.push_back(s->summary());
  reply(protocol::success_response(env.type, env.id, json{{"sessions", list}}));
}

void Server::switch_session(std::uint64_t conn, const Envelope& env, Reply reply) {
  auto it = sessions_.find(*env.session_id);
  if (it == sessions_.end())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                               "Session not found: " + *env.session_id));
  if (env.body.contains("afterSeq") && !env.body["afterSeq"].is_number_unsigned())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command,
                                               "Field 'afterSeq' must be a non-negative integer"));
  it->second->subscribe(conn);
  json data = {{"sessionId", *env.session_id}, {"lastSeq", it->second->last_seq()},
               {"sessionInfo", it->second->summary()}};
  if (env.body.contains("afterSeq")) {
    // No replay buffer yet: events after afterSeq that were already sent are not resent.
    auto after = env.body["afterSeq"].get<std::uint64_t>();
    if (after < it->second->last_seq()) {
      data["gap"] = true;
      data["firstSeq"] = it->second->last_seq() + 1;
    }
  }
  Response r = protocol::success_response(env.type, env.id, data);
  r.session_id = *env.session_id;
  reply(r);
}

void Server::unsubscribe(std::uint64_t conn, const Envelope& env, Reply reply) {
  auto it = sessions_.find(*env.session_id);
  if (it == sessions_.end())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                               "Session not found: " + *env.session_id));
  bool was = it->second->unsubscribe(conn);
  Response r = protocol::success_response(env.type, env.id, json{{"wasSubscribed", was}});
  r.session_id = *env.session_id;
  reply(r);
}

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
      {"rejectionsByCode", errors_by_code_},
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
  bool degraded = false;
  for (const auto& [key, b] : breakers_.all()) {
    if (b.state() != reliability::BreakerState::closed) {
      issues.push_back("circuit " + key + " is " + std::string(reliability::to_string(b.state())));
      degraded = true;
    }
  }
  for (const auto& [id, s] : sessions_) {
    if (!s->agent_running()) {
      issues.push_back("session " + id + " has no running agent");
      degraded = true;
    }
  }
  if (draining_) issues.push_back("draining: not accepting commands");
  std::string status = draining_ ? "unhealthy" : degraded ? "degraded" : "ok";
  return json{{"healthy", !draining_},
              {"status", status},
              {"issues", issues},
              {"hasOpenCircuit", breakers_.any_open()},
              {"sessionCount", sessions_.size()},
              {"connectionCount", connections_.size()}};
}

void Server::get_metrics(std::uint64_t conn, const Envelope& env, Reply reply) {
  reply(protocol::success_response(env.type, env.id, metrics_json()));
}

void Server::health_check(std::uint64_t, const Envelope& env, Reply reply) {
  reply(protocol::success_response(env.type, env.id, health_json()));
}

// ---------------------------------------------------------------- session commands

void Server::relay_session_command(std::uint64_t conn, const Envelope& env, Reply reply) {
  auto it = sessions_.find(*env.session_id);
  if (it == sessions_.end())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                               "Session not found: " + *env.session_id));
  it->second->relay(env, std::move(reply));
}

void Server::get_command_history(std::uint64_t, const Envelope& env, Reply reply) {
  reply(protocol::success_response(env.type, env.id, pipeline_.history("local", env.body)));
}

void Server::set_lifecycle_events(std::uint64_t conn, const Envelope& env, Reply reply) {
  auto enabled = env.body.find("enabled");
  if (enabled == env.body.end() || !enabled->is_boolean())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command,
                                          "Field 'enabled' must be a boolean"));
  if (enabled->get<bool>()) {
    lifecycle_opt_out_.erase(conn);
  } else {
    lifecycle_opt_out_.insert(conn);
  }
  reply(protocol::success_response(env.type, env.id, json{{"enabled", enabled->get<bool>()}}));
}

// ---------------------------------------------------------------- agent supervision

void Server::notify_subscribers(const session::Session& session, const Frame& frame) {
  for (auto conn_id : session.subscribers())
    if (Connection* c = connections_.find(conn_id)) c->send_control(frame);
}

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
  notify_subscribers(session, make_frame(protocol::server_event("agent_exited", data)));
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
    if (auto failure = s->start_agent()) {
      std::chrono::milliseconds next{0};
      bool again = s->claim_restart(next);
      notify_subscribers(*s, make_frame(protocol::server_event(
                                 "agent_exited", {{"sessionId", s->id()},
                                                  {"restarting", again},
                                                  {"error", *failure}})));
      if (again) schedule_restart(s, next);
      return;
    }
    ++agent_restarts_;
    notify_subscribers(*s, make_frame(protocol::server_event(
                               "agent_restarted", {{"sessionId", s->id()},
                                                   {"pid", *s->agent_pid()},
                                                   {"restarts", s->restarts_total()}})));
  });
}

void Server::on_session_quiet(session::Session&) { maybe_finish_stdio_drain(); }

// ---------------------------------------------------------------- shutdown

void Server::shutdown(std::string reason, std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  ready_ = false;
  shutdown_done_ = std::move(done);
  log::info("shutdown_started", {{"reason", reason}, {"sessions", sessions_.size()}});
  auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.drain_timeout);
  broadcast(make_frame(protocol::server_event(
      "server_shutdown", {{"reason", reason}, {"timeoutMs", timeout_ms.count()}})));
  drain_timer_.expires_after(options_.drain_timeout);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    log::warn("shutdown_timeout", {{"stopping", stopping_.size()}});
    if (auto done = std::move(shutdown_done_)) done();
  });
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (auto& [id, s] : sessions) {
    auto* raw = s.get();
    stopping_.emplace(raw, s);
    s->stop([this, raw] {
      boost::asio::post(io_, [this, raw] {
        stopping_.erase(raw);
        if (stopping_.empty()) finish_shutdown();
      });
    });
  }
  if (stopping_.empty()) finish_shutdown();
}

void Server::finish_shutdown() {
  if (!shutdown_done_) return;
  if (connections_.size() > 0) {
    // Each connection flushes its queue, closes, and reports on_close; the last one
    // brings us back here.
    std::vector<Connection*> all;
    connections_.for_each([&](Connection& c) { all.push_back(&c); });
    for (auto* c : all) c->close_gracefully();
    // A client that does not answer the close frame must not hold the exit for the whole
    // drain timeout: give the close handshakes a second, then go.
    drain_timer_.expires_after(std::min<std::chrono::milliseconds>(options_.drain_timeout,
                                                                   std::chrono::seconds(1)));
    drain_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || !shutdown_done_) return;
      log::info("shutdown_complete", {{"unclosedConnections", connections_.size()}});
      auto done = std::move(shutdown_done_);
      shutdown_done_ = nullptr;
      done();
    });
    return;
  }
  drain_timer_.cancel();
  log::info("shutdown_complete");
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  done();
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
