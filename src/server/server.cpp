#include "server/server.hpp"

#include <boost/asio/post.hpp>
#include <filesystem>
#include <system_error>

#include "observability/log.hpp"

namespace pi_server::server {
namespace fs = std::filesystem;
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;

namespace {
// Period of the loop-stall probe; cheap (one timer), frequent enough to see 100 ms stalls.
constexpr std::chrono::milliseconds kStallProbe{250};
}  // namespace

Server::Server(boost::asio::io_context& io, ServerOptions options,
               reliability::PipelineOptions pipeline_options,
               reliability::BreakerOptions breaker_options)
    : io_(io),
      options_(std::move(options)),
      scheduler_(io),
      pipeline_(clock_, scheduler_, *this, *this, pipeline_options),
      breakers_(clock_, breaker_options),
      launcher_(io, relay_stats_.spawn_time),
      session_context_{clock_,        scheduler_, launcher_,      connections_,
                       relay_stats_,  *this,      options_.agent, options_.event_buffer_bytes},
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
  schedule_stall_probe(clock_.steady_now() + kStallProbe);
}

void Server::schedule_stall_probe(SteadyTime due) {
  scheduler_.schedule(kStallProbe, [this, due] {
    auto now = clock_.steady_now();
    double late = std::chrono::duration<double>(now - due).count();
    if (late < 0) late = 0;
    loop_stall_.observe(late);
    loop_stall_max_seconds_ = std::max(loop_stall_max_seconds_, late);
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
  if (!connections_.find(connection.id())) return;
  respond(connection, protocol::error_response("", std::nullopt, code, std::string(reason)));
}

// ---------------------------------------------------------------- the pipeline

void Server::on_message(Connection& connection, std::string_view text) {
  // A connection refused at open (limit, drain) may still deliver what it sent meanwhile.
  if (!connections_.find(connection.id())) return;
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

}  // namespace pi_server::server
