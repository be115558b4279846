#include "server/server.hpp"

#include <boost/asio/post.hpp>

#include "observability/log.hpp"

namespace pi_server::server {
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;

namespace {
// Period of the loop-stall probe; cheap (one timer), frequent enough to see 100 ms stalls.
constexpr std::chrono::milliseconds kStallProbe{250};
// How often a stdio drain looks whether the work in flight is done.
constexpr std::chrono::milliseconds kStdioDrainPoll{10};

std::filesystem::path working_directory() {
  std::error_code ec;
  return std::filesystem::current_path(ec);
}

// Without --workspace-root: the daemon's working directory and its state dir.
std::vector<std::filesystem::path> workspace_roots(const ServerOptions& options) {
  if (!options.workspace_roots.empty()) return options.workspace_roots;
  return {working_directory(), options.state_dir};
}

// A session whose create_session names no cwd runs in the first workspace root given, or,
// with none given, where the daemon runs.
std::filesystem::path default_session_cwd(const ServerOptions& options) {
  return options.workspace_roots.empty() ? working_directory() : options.workspace_roots.front();
}
}  // namespace

Server::Server(boost::asio::io_context& io, ServerOptions options, persistence::Store* store)
    : io_(io),
      options_(std::move(options)),
      scheduler_(io),
      responder_(connections_),
      launcher_(io, relay_stats_.spawn_time),
      sessions_(clock_, scheduler_, launcher_, options_, connections_, relay_stats_),
      admission_(clock_, scheduler_,
                 RateLimit{options_.rate_limit_per_second, options_.rate_limit_burst,
                           options_.rate_limit_bytes_per_second,
                           std::max(options_.rate_limit_bytes_burst,
                                    static_cast<double>(options_.connection.max_frame_bytes))},
                 options_.breakers, sessions_),
      outcomes_(clock_, options_.pipeline.max_outcomes, options_.pipeline.outcome_max_age,
                options_.pipeline.max_outcome_bytes),
      store_(store),
      records_(store),
      journal_(open_journal()),
      metrics_(front_door_, responder_, sessions_, connections_, pipeline_, outcomes_, admission_,
               auth_stats_),
      paths_(workspace_roots(options_), options_.state_dir),
      commands_(sessions_, connections_, responder_, outcomes_, metrics_, paths_,
                default_session_cwd(options_)),
      pipeline_(clock_, scheduler_,
                reliability::PipelineCollaborators{outcomes_, admission_, sessions_, commands_,
                                                   responder_, journal_.get()},
                options_.pipeline),
      drain_timer_(io) {
  sessions_.set_provider_feedback(&admission_);
  if (store_) sessions_.set_records(&records_);
  commands_.set_persistence(store_ ? &records_ : nullptr, &recovery_);
  metrics_.set_store(store_);
  sessions_.start_warm_pool();
  schedule_stall_probe(clock_.steady_now() + kStallProbe);
}

Server::~Server() = default;

std::unique_ptr<persistence::StoredOutcomeJournal> Server::open_journal() {
  if (!store_ || !options_.persistence.journal) return nullptr;
  auto recovered = persistence::recover_journal(*store_, outcomes_);
  recovery_.outcomes_restored = recovered.restored;
  recovery_.in_flight_at_crash = std::move(recovered.in_flight_at_crash);
  if (recovered.restored > 0 || !recovery_.in_flight_at_crash.empty())
    log::info("journal_recovered", {{"outcomes", recovered.restored},
                                    {"inFlightAtCrash", recovery_.in_flight_at_crash.size()}});
  return std::make_unique<persistence::StoredOutcomeJournal>(*store_, clock_, recovered.next_seq);
}

void Server::resume_sessions() {
  auto rows = records_.active();
  recovery_.sessions_resuming = rows.size();
  for (const auto& row : rows) {
    sessions_.load(row, 0, [this, owner = row.owner](const std::string& id, Result<json> loaded) {
      --recovery_.sessions_resuming;
      if (loaded) {
        recovery_.recovered_sessions.push_back({{"sessionId", id}, {"owner", owner}});
        log::info("session_resumed", {{"session", id}});
      } else {
        recovery_.failed_sessions.push_back(
            {{"sessionId", id}, {"owner", owner}, {"error", loaded.error()}});
        log::warn("session_resume_failed", {{"session", id}, {"error", loaded.error()}});
      }
    });
  }
}

void Server::schedule_stall_probe(SteadyTime due) {
  scheduler_.schedule(kStallProbe, [this, due] {
    auto now = clock_.steady_now();
    double late = std::max(0.0, std::chrono::duration<double>(now - due).count());
    front_door_.loop_stall.observe(late);
    front_door_.loop_stall_max_seconds = std::max(front_door_.loop_stall_max_seconds, late);
    if (late > 0.1) log::warn("loop_stall", {{"lateMs", static_cast<std::int64_t>(late * 1000)}});
    schedule_stall_probe(now + kStallProbe);
  });
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
    responder_.count_error(ErrorCode::limit_reached);
    connection->send_control(make_frame(protocol::serialize(r)));
    connection->close_gracefully();
    return;
  }
  if (options_.max_connections_per_principal > 0) {
    const std::string& who = connection->principal().name;
    std::size_t theirs = 0;
    connections_.for_each([&](Connection& c) { theirs += c.principal().name == who; });
    if (theirs >= options_.max_connections_per_principal) {
      auto r = protocol::error_response(
          "", std::nullopt, ErrorCode::limit_reached,
          "Too many connections for this principal (max " +
              std::to_string(options_.max_connections_per_principal) + ")");
      responder_.count_error(ErrorCode::limit_reached);
      connection->send_control(make_frame(protocol::serialize(r)));
      connection->close_gracefully();
      return;
    }
  }
  connections_.add(connection);
  ++front_door_.connections_total;
  json limits = {{"maxFrameBytes", options_.connection.max_frame_bytes},
                 {"maxSessions", options_.max_sessions},
                 {"maxConnections", options_.max_connections},
                 {"maxPendingPerLane", options_.pipeline.max_pending_per_lane},
                 {"rateLimit", {{"commandsPerSecond", options_.rate_limit_per_second},
                                {"burst", options_.rate_limit_burst}}},
                 {"maxAgentLineBytes", options_.agent.max_line_bytes}};
  json data = {{"serverVersion", PI_SERVER_VERSION},
               {"protocolVersion", kProtocolVersion},
               {"transports", transports_},
               {"connectionId", "c" + std::to_string(connection->id())},
               {"limits", limits}};
  connection->send_control(make_frame(protocol::server_event("server_ready", data)));
  log::debug("connection_opened", {{"conn", connection->id()},
                                   {"transport", std::string(connection->transport())},
                                   {"principal", connection->principal().name},
                                   {"admin", connection->principal().admin}});
}

void Server::on_close(Connection& connection) {
  auto id = connection.id();
  if (connection.transport() == "stdio" && connection.queued_bytes() > 0) {
    // Closed with frames unwritten (stdout write failed): those answers are lost.
    log::error("stdio_output_cut_off", {{"conn", id}, {"queuedBytes", connection.queued_bytes()}});
    output_cut_off_ = true;
  }
  sessions_.unsubscribe_everywhere(id);
  connections_.remove(id);
  commands_.forget_connection(id);
  admission_.forget_connection(id);
  if (!options_.listen && connection.transport() == "stdio" && !draining_) {
    // stdio-only: without its one client the daemon has nobody to serve.
    boost::asio::post(io_, [this] { shutdown("stdio closed", [this] { io_.stop(); }); });
  }
  log::debug("connection_closed", {{"conn", id}});
  if (draining_ && connections_.size() == 0 && shutdown_done_ && sessions_.stopping() == 0) {
    finish_shutdown();
  } else if (closing_connections_ && shutdown_done_ && !stdio_connection_open() &&
             clock_.steady_now() >= close_grace_end_) {
    // The stdio output is written; the WebSocket clients already had their second.
    complete_shutdown();
  }
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
  check_stdio_drain();
}

void Server::check_stdio_drain() {
  if (!stdio_draining_ || draining_) return;
  if (pipeline_.in_flight() > 0 || !sessions_.all_quiet()) {
    scheduler_.schedule(kStdioDrainPoll, [this] { check_stdio_drain(); });
    return;
  }
  drain_timer_.cancel();
  shutdown("stdin closed", [this] { io_.stop(); });
}

void Server::on_rejected_message(Connection& connection, ErrorCode code, std::string_view reason) {
  if (!connections_.find(connection.id())) return;
  responder_.respond(connection, protocol::error_response("", std::nullopt, code, std::string(reason)));
}

// ---------------------------------------------------------------- the front door

void Server::on_message(Connection& connection, std::string_view text) {
  // A connection refused at open (limit, drain) may still deliver what it sent meanwhile.
  if (!connections_.find(connection.id())) return;
  // Parsing costs the shared loop per byte: a connection over its byte rate is refused before.
  if (auto wait = admission_.admit_bytes(connection.id(), text.size())) {
    ++front_door_.commands_by_type["rate_limited_bytes"];
    auto r = protocol::error_response(protocol::peek_string_member(text, "type").value_or(""),
                                      protocol::peek_string_member(text, "id"),
                                      ErrorCode::rate_limited,
                                      "Inbound byte rate exceeded (" +
                                          std::to_string(static_cast<long long>(
                                              options_.rate_limit_bytes_per_second)) +
                                          " bytes/s per connection)");
    r.data = json{{"retryAfterMs", wait->count()}};
    responder_.respond(connection, r);
    return;
  }
  auto parsed = protocol::parse_envelope(text);
  if (!parsed) {
    ++front_door_.commands_by_type["invalid"];
    responder_.respond(connection,
                       protocol::error_response(parsed.failure().type.value_or(""), parsed.failure().id,
                                                parsed.failure().code, parsed.failure().message));
    return;
  }
  const Envelope& env = parsed.value();
  ++front_door_.commands_by_type[env.is_server_command() ? env.type : "session_command"];
  if (draining_) {
    responder_.respond(connection, protocol::error_response(env.type, env.id, ErrorCode::shutting_down,
                                                            "The server is shutting down"));
    return;
  }
  reliability::Submission submission;
  submission.envelope = std::move(parsed.value());
  submission.connection_id = connection.id();
  submission.principal = connection.principal();
  submission.lifecycle_events = commands_.wants_lifecycle_events(connection.id());
  pipeline_.submit(std::move(submission));
}

HttpAnswer Server::handle_http(std::string_view method, std::string_view target, std::string_view) {
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
    a.body = ok ? R"({"status":"ready"})"
                : (draining_ ? R"({"status":"draining"})" : R"({"status":"starting"})");
  } else if (path == "/metrics") {
    a.status = 200;
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = metrics_.to_prometheus();
  }
  return a;
}

// ---------------------------------------------------------------- shutdown

void Server::shutdown(std::string reason, std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  ready_ = false;
  commands_.begin_drain();
  shutdown_done_ = std::move(done);
  drain_deadline_ = clock_.steady_now() + options_.drain_timeout;
  log::info("shutdown_started", {{"reason", reason}, {"sessions", sessions_.size()}});
  if (on_drain_) on_drain_();
  auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.drain_timeout);
  responder_.broadcast("server_shutdown", {{"reason", reason}, {"timeoutMs", timeout_ms.count()}});
  drain_timer_.expires_after(options_.drain_timeout);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    log::warn("shutdown_timeout", {{"stopping", sessions_.stopping()}});
    note_unwritten_stdio_output();
    if (auto done = std::move(shutdown_done_)) done();
  });
  sessions_.stop_all([this] { finish_shutdown(); });
}

void Server::finish_shutdown() {
  if (!shutdown_done_) return;
  if (pipeline_.in_flight() > 0 && clock_.steady_now() < drain_deadline_) {
    // Answers waiting for their outcome to be durable (the agents' last answers): send them
    // before the connections close.
    scheduler_.schedule(std::chrono::milliseconds(2), [this] { finish_shutdown(); });
    return;
  }
  if (connections_.size() > 0) {
    // Each connection flushes its queue, closes, and reports on_close; the last one
    // brings us back here.
    std::vector<Connection*> all;
    connections_.for_each([&](Connection& c) { all.push_back(&c); });
    closing_connections_ = true;
    for (auto* c : all) c->close_gracefully();
    // A client that does not answer the close frame must not hold the exit for the whole
    // drain timeout: give the close handshakes a second, then go. stdio is different: its
    // queue holds answers its client is owed, so it is written out until the drain deadline.
    close_grace_end_ = clock_.steady_now() + std::min<std::chrono::milliseconds>(
                                                 options_.drain_timeout, std::chrono::seconds(1));
    if (connections_.size() > 0) await_connections(close_grace_end_);
    return;
  }
  drain_timer_.cancel();
  log::info("shutdown_complete");
  std::exchange(shutdown_done_, nullptr)();
}

void Server::await_connections(SteadyTime until) {
  drain_timer_.expires_at(until);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !shutdown_done_) return;
    if (stdio_connection_open() && clock_.steady_now() < drain_deadline_) {
      await_connections(drain_deadline_);
      return;
    }
    complete_shutdown();
  });
}

void Server::complete_shutdown() {
  drain_timer_.cancel();
  note_unwritten_stdio_output();
  if (connections_.size() > 0)
    log::info("shutdown_complete", {{"unclosedConnections", connections_.size()}});
  else
    log::info("shutdown_complete");
  if (auto done = std::exchange(shutdown_done_, nullptr)) done();
}

bool Server::stdio_connection_open() const {
  bool open = false;
  connections_.for_each([&](Connection& c) { open = open || c.transport() == "stdio"; });
  return open;
}

void Server::note_unwritten_stdio_output() {
  connections_.for_each([&](Connection& c) {
    if (c.transport() != "stdio" || c.queued_bytes() == 0 || output_cut_off_) return;
    log::error("stdio_output_cut_off", {{"conn", c.id()}, {"queuedBytes", c.queued_bytes()}});
    output_cut_off_ = true;
  });
}

int Server::exit_code() {
  note_unwritten_stdio_output();  // e.g. a second signal stopped the loop mid-write
  return output_cut_off_ ? kExitOutputCutOff : 0;
}

}  // namespace pi_server::server
