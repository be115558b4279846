// The handlers of the server commands, and the hand-off of session commands to their
// session. Fields were type-checked by the parser against the command table; what is
// checked here is meaning (an existing directory, a known thinking level...).
#include "server/server_commands.hpp"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "observability/log.hpp"
#include "reliability/command_history.hpp"
#include "server/session_commands.hpp"

namespace pi_server::server {
namespace fs = std::filesystem;
using nlohmann::json;
using protocol::Envelope;
using protocol::Response;
using reliability::Submission;

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

std::string string_field(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Response invalid(const Envelope& env, std::string message) {
  return protocol::error_response(env.type, env.id, ErrorCode::invalid_command, std::move(message));
}

Response success(const Envelope& env, json data) {
  Response r = protocol::success_response(env.type, env.id, std::move(data));
  r.session_id = env.session_id;
  return r;
}

}  // namespace

ServerCommands::Handler ServerCommands::handler_for(std::string_view type) {
  static constexpr std::pair<std::string_view, Handler> kHandlers[] = {
      {"create_session", &ServerCommands::create_session},
      {"delete_session", &ServerCommands::delete_session},
      {"list_sessions", &ServerCommands::list_sessions},
      {"switch_session", &ServerCommands::switch_session},
      {"unsubscribe", &ServerCommands::unsubscribe},
      {"get_metrics", &ServerCommands::get_metrics},
      {"health_check", &ServerCommands::health_check},
      {"get_command_history", &ServerCommands::get_command_history},
      {"set_lifecycle_events", &ServerCommands::set_lifecycle_events},
  };
  for (const auto& [name, handler] : kHandlers)
    if (name == type) return handler;
  return nullptr;
}

bool ServerCommands::has_handler(std::string_view type) { return handler_for(type) != nullptr; }

void ServerCommands::execute(const Submission& sub, Reply reply) {
  const Envelope& env = sub.envelope;
  if (draining_) {
    // Admitted before the drain began, started after: the sessions are going away.
    auto r = protocol::error_response(env.type, env.id, ErrorCode::shutting_down,
                                      "The server is shutting down");
    r.session_id = env.session_id;
    return reply(r);
  }
  if (!env.is_server_command()) return to_session(sub, std::move(reply));
  (this->*handler_for(env.type))(sub, std::move(reply));
}

std::shared_ptr<session::Session> ServerCommands::session_or_reply(const Envelope& env,
                                                                   const Reply& reply) const {
  if (auto session = sessions_.find(*env.session_id)) return session;
  reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                 "Session not found: " + *env.session_id));
  return nullptr;
}

void ServerCommands::to_session(const Submission& sub, Reply reply) {
  auto session = session_or_reply(sub.envelope, reply);
  if (!session) return;
  // A hibernated session wakes first; the command waits in its lane meanwhile.
  awake_then(session, sub, std::move(reply), [](const Submission& sub, session::Session& session,
                                                Reply reply) {
    if (sub.envelope.spec->family == protocol::CommandFamily::session_daemon)
      return SessionCommands::execute(sub, session, std::move(reply));
    session.relay(sub.envelope, std::move(reply));
  });
}

void ServerCommands::awake_then(const std::shared_ptr<session::Session>& session,
                                const Submission& sub, Reply reply, SessionStep step) {
  if (session->dormancy() == session::Session::Dormancy::awake)
    return step(sub, *session, std::move(reply));
  std::weak_ptr<session::Session> weak = session;
  sessions_.ensure_awake(session, [weak, sub, reply = std::move(reply), step](Status woken) {
    auto s = weak.lock();
    const Envelope& env = sub.envelope;
    if (!woken || !s) {
      auto r = !s ? protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                             "Session not found: " + *env.session_id)
                  : protocol::error_response(env.type, env.id,
                                             woken.code().value_or(ErrorCode::agent_exited),
                                             woken.message());
      r.session_id = env.session_id;
      return reply(r);
    }
    step(sub, *s, reply);
  });
}

// ---------------------------------------------------------------- sessions

void ServerCommands::create_session(const Submission& sub, Reply reply) {
  const Envelope& env = sub.envelope;
  agent::SessionLaunch launch;
  launch.cwd = string_field(env.body, "cwd");
  launch.model = string_field(env.body, "model");
  launch.thinking_level = string_field(env.body, "thinkingLevel");
  launch.name = string_field(env.body, "name");
  std::string session_id = env.session_id.value_or("");
  if (!session_id.empty() && !valid_session_id(session_id))
    return reply(invalid(env,
                         "Field 'sessionId' may hold only letters, digits, '-', '_' and '.' "
                         "(at most 128, not starting with '.')"));
  std::error_code ec;
  if (launch.cwd.empty()) {
    launch.cwd = fs::current_path(ec).string();
  } else if (!fs::path(launch.cwd).is_absolute() || !fs::is_directory(launch.cwd, ec)) {
    return reply(invalid(env,
                         "Field 'cwd' must be an existing absolute directory"));
  }
  if (!launch.model.empty()) {
    auto slash = launch.model.find('/');
    if (slash == 0 || slash == std::string::npos || slash + 1 == launch.model.size())
      return reply(invalid(env, "Field 'model' must look like 'provider/id'"));
  }
  if (!launch.thinking_level.empty() &&
      std::find(std::begin(kThinkingLevels), std::end(kThinkingLevels), launch.thinking_level) ==
          std::end(kThinkingLevels))
    return reply(invalid(env,
                         "Field 'thinkingLevel' must be one of off, minimal, low, medium, high, xhigh"));

  sessions_.create(session_id, std::move(launch), sub.connection_id,
                   [this, env_type = env.type, env_id = env.id, conn = sub.connection_id,
                    reply = std::move(reply)](const std::string& id, Result<json> created) {
                     if (!created) {
                       auto r = protocol::error_response(
                           env_type, env_id,
                           created.status().code().value_or(ErrorCode::agent_exited),
                           created.error());
                       // Which (perhaps generated) id failed; not for a refused duplicate.
                       if (r.code != ErrorCode::session_exists) r.session_id = id;
                       return reply(r);
                     }
                     json info = std::move(created.value());
                     Response r = protocol::success_response(
                         env_type, env_id, json{{"sessionId", id}, {"sessionInfo", info}});
                     r.session_id = id;
                     reply(r);
                     responder_.broadcast("session_created", {{"sessionId", id}, {"sessionInfo", info}});
                     log::info("session_created", {{"session", id}, {"conn", conn}});
                   });
}

void ServerCommands::delete_session(const Submission& sub, Reply reply) {
  const Envelope& env = sub.envelope;
  std::string id = *env.session_id;
  // Answer once the agent is gone, so "deleted" means no process is left.
  bool found = sessions_.remove(id, [this, id, env, conn = sub.connection_id, reply] {
    reply(success(env, json{{"sessionId", id}, {"deleted", true}}));
    responder_.broadcast("session_deleted", {{"sessionId", id}});
    log::info("session_deleted", {{"session", id}, {"conn", conn}});
  });
  if (!found)
    reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                   "Session not found: " + id));
}

void ServerCommands::list_sessions(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id,
                                   json{{"sessions", sessions_.summaries()}}));
}

void ServerCommands::switch_session(const Submission& sub, Reply reply) {
  const Envelope& env = sub.envelope;
  auto found = session_or_reply(env, reply);
  if (!found) return;
  // Attaching wakes a hibernated session: a client that attaches is about to use it.
  awake_then(found, sub, std::move(reply), [this](const Submission& sub, session::Session& session,
                                                  Reply reply) { attach(sub, session, reply); });
}

void ServerCommands::attach(const Submission& sub, session::Session& session, const Reply& reply) {
  const Envelope& env = sub.envelope;
  const auto conn = sub.connection_id;
  auto after = env.body.find("afterSeq");
  bool resume = after != env.body.end();
  if (resume && session.is_subscribed(conn))
    // Its live events are already on the way: a replay would interleave with them.
    return reply(invalid(env,
                         "Already subscribed: unsubscribe first, then resume with afterSeq"));
  if (connections_.find(conn)) session.subscribe(conn);
  json data = {{"sessionId", *env.session_id},
               {"lastSeq", session.last_seq()},
               {"sessionInfo", session.summary()}};
  session::Session::Replay replay;
  if (resume) {
    replay = session.events_after(after->get<std::uint64_t>());
    data["gap"] = replay.gap;
    data["firstSeq"] = replay.first_seq;
    data["replayedEvents"] = replay.events.size();
  }
  reply(success(env, std::move(data)));
  // The buffered events follow the response, then the live stream: everything here runs in
  // one turn of the loop, so no live event can slip in between (no gap, no duplicate).
  if (Connection* c = connections_.find(conn))
    for (const auto& [seq, frame] : replay.events) c->send_event(frame, session.id(), seq);
}

void ServerCommands::unsubscribe(const Submission& sub, Reply reply) {
  auto session = session_or_reply(sub.envelope, reply);
  if (!session) return;
  bool was = session->unsubscribe(sub.connection_id);
  reply(success(sub.envelope, json{{"wasSubscribed", was}}));
}

// ---------------------------------------------------------------- observability

void ServerCommands::get_metrics(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, metrics_.to_json()));
}

void ServerCommands::health_check(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, metrics_.health()));
}

void ServerCommands::get_command_history(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id,
                                   reliability::command_history(outcomes_, sub.principal,
                                                                sub.envelope.body)));
}

void ServerCommands::set_lifecycle_events(const Submission& sub, Reply reply) {
  bool enabled = sub.envelope.body["enabled"].get<bool>();  // required boolean (table)
  if (enabled) {
    lifecycle_opt_out_.erase(sub.connection_id);
  } else if (connections_.find(sub.connection_id)) {
    lifecycle_opt_out_.insert(sub.connection_id);
  }
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, json{{"enabled", enabled}}));
}

}  // namespace pi_server::server
