// Server commands: sessions (create, delete, list, subscribe) and the relay of session
// commands to their agent.
#include <boost/asio/post.hpp>
#include <filesystem>
#include <random>
#include <system_error>

#include "observability/log.hpp"
#include "server/server.hpp"

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

// ---------------------------------------------------------------- server commands

std::shared_ptr<session::Session> Server::session_or_reply(const Envelope& env,
                                                           const Reply& reply) const {
  auto it = sessions_.find(*env.session_id);
  if (it != sessions_.end()) return it->second;
  reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                 "Session not found: " + *env.session_id));
  return nullptr;
}

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
  auto session = std::make_shared<session::Session>(session_context_, session_id, launch);
  if (auto started = session->start_agent(); !started) {
    auto r = protocol::error_response(env.type, env.id, ErrorCode::agent_exited, started.message());
    r.session_id = session_id;
    return reply(r);
  }
  sessions_.emplace(session_id, session);
  // The creator may have gone while the command waited in its lane.
  if (connections_.find(conn)) session->subscribe(conn);

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
      // Out of the registry before the reply lets the next queued command of this lane run
      // (it must see session_not_found); destroyed later, not inside its own callback.
      if (auto it = sessions_.find(session_id); it != sessions_.end() && it->second == s) {
        sessions_.erase(it);
        s->stop([] {});
        boost::asio::post(io_, [keep = s] {});
      }
      reply(r);
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
  auto session = session_or_reply(env, reply);
  if (!session) return;
  sessions_.erase(session->id());
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
  auto found = session_or_reply(env, reply);
  if (!found) return;
  if (env.body.contains("afterSeq") && !env.body["afterSeq"].is_number_unsigned())
    return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command,
                                               "Field 'afterSeq' must be a non-negative integer"));
  auto& session = *found;
  if (env.body.contains("afterSeq") && session.is_subscribed(conn))
    // Its live events are already on the way: a replay would interleave with them.
    return reply(protocol::error_response(env.type, env.id, ErrorCode::invalid_command,
                                          "Already subscribed: unsubscribe first, then resume "
                                          "with afterSeq"));
  if (connections_.find(conn)) session.subscribe(conn);
  json data = {{"sessionId", *env.session_id}, {"lastSeq", session.last_seq()},
               {"sessionInfo", session.summary()}};
  session::Session::Replay replay;
  if (env.body.contains("afterSeq")) {
    replay = session.events_after(env.body["afterSeq"].get<std::uint64_t>());
    data["gap"] = replay.gap;
    data["firstSeq"] = replay.first_seq;
    data["replayedEvents"] = replay.events.size();
  }
  Response r = protocol::success_response(env.type, env.id, data);
  r.session_id = *env.session_id;
  reply(r);
  // The buffered events follow the response, then the live stream: everything here runs in
  // one turn of the loop, so no live event can slip in between (no gap, no duplicate).
  if (Connection* c = connections_.find(conn))
    for (const auto& [seq, frame] : replay.events) c->send_event(frame, session.id(), seq);
}

void Server::unsubscribe(std::uint64_t conn, const Envelope& env, Reply reply) {
  auto session = session_or_reply(env, reply);
  if (!session) return;
  bool was = session->unsubscribe(conn);
  Response r = protocol::success_response(env.type, env.id, json{{"wasSubscribed", was}});
  r.session_id = *env.session_id;
  reply(r);
}

// ---------------------------------------------------------------- session commands

void Server::relay_session_command(std::uint64_t conn, const Envelope& env, Reply reply) {
  if (auto session = session_or_reply(env, reply)) session->relay(env, std::move(reply));
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
  } else if (connections_.find(conn)) {
    lifecycle_opt_out_.insert(conn);
  }
  reply(protocol::success_response(env.type, env.id, json{{"enabled", enabled->get<bool>()}}));
}

}  // namespace pi_server::server
