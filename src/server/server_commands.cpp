// The handlers of the server commands, and the hand-off of session commands to their
// session. Fields were type-checked by the parser against the command table; what is
// checked here is meaning (an existing directory, a known thinking level...).
#include "server/server_commands.hpp"

#include "reliability/command_log.hpp"

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
      {"list_stored_sessions", &ServerCommands::list_stored_sessions},
      {"load_session", &ServerCommands::load_session},
      {"get_startup_recovery", &ServerCommands::get_startup_recovery},
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

void ServerCommands::hold(const Submission& sub) {
  // Holds nest per session; the same Session object gets the release, even if the id is
  // reused meanwhile. One job holds at most once (the pipeline pairs hold and release).
  if (!sub.envelope.session_id || sub.envelope.is_server_command()) return;
  if (auto session = sessions_.find(*sub.envelope.session_id)) {
    session->hold_events();
    held_[sub.job_id] = session;
  }
}

void ServerCommands::release(const Submission& sub) {
  if (auto after = after_response_.find(sub.job_id); after != after_response_.end()) {
    auto action = std::move(after->second);
    after_response_.erase(after);
    action();
  }
  auto it = held_.find(sub.job_id);
  if (it == held_.end()) return;
  if (auto session = it->second.lock()) session->release_events();
  held_.erase(it);
}

std::shared_ptr<session::Session> ServerCommands::session_or_reply(const Submission& sub,
                                                                   const Reply& reply) const {
  const Envelope& env = sub.envelope;
  if (auto session = sessions_.find_for(*env.session_id, sub.principal)) return session;
  // The same answer whether the session does not exist or is someone else's.
  reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                 "Session not found: " + *env.session_id));
  return nullptr;
}

Result<fs::path> ServerCommands::confine(const Submission& sub, std::string_view path,
                                         const fs::path& base) const {
  return paths_.resolve(path, base, [&](std::string_view folder) {
    return sessions_.folder_visible_to(folder, sub.principal);
  });
}

Result<Envelope, Response> ServerCommands::with_confined_paths(const Submission& sub,
                                                               const fs::path& base) const {
  Envelope env = sub.envelope;
  for (const auto& field : env.spec->fields) {
    if (!protocol::is_path(field.type)) continue;
    auto refuse = [&](ErrorCode code, std::string message) {
      Response r = protocol::error_response(env.type, env.id, code,
                                            "Field '" + std::string(field.name) + "': " + message);
      r.session_id = env.session_id;
      return r;
    };
    for (const auto& raw : env.raw_members)
      if (raw.key == field.name) return refuse(ErrorCode::invalid_command, "The path is too long");
    auto it = env.body.find(field.name);
    if (it == env.body.end() || !it->is_string()) continue;
    auto resolved = confine(sub, it->get_ref<const std::string&>(), base);
    if (!resolved)
      return refuse(resolved.status().code().value_or(ErrorCode::forbidden), resolved.error());
    if (field.type == protocol::FieldType::session_file) {
      // pi moves the agent into the cwd the file's header names: that must be allowed too.
      // (A small read on the loop: the header is within the file's first MiB.)
      auto header_cwd = security::session_file_cwd(*resolved);
      if (!header_cwd)
        return refuse(header_cwd.status().code().value_or(ErrorCode::forbidden), header_cwd.error());
      if (header_cwd->has_value()) {
        const std::string& cwd = **header_cwd;
        if (!fs::path(cwd).is_absolute())
          return refuse(ErrorCode::forbidden, "The session file names a relative cwd");
        if (auto checked = confine(sub, cwd, {}); !checked)
          return refuse(ErrorCode::forbidden, "The session file's cwd: " + checked.error());
      }
    }
    // pi gets the path that was checked, not one it would resolve its own way (~, file:,
    // `..` after a symlink).
    *it = resolved->string();
  }
  return env;
}

void ServerCommands::to_session(const Submission& sub, Reply reply) {
  auto session = session_or_reply(sub, reply);
  if (!session) return;
  const auto& fields = sub.envelope.spec->fields;
  bool names_paths = std::any_of(fields.begin(), fields.end(),
                                 [](const protocol::FieldSpec& f) { return protocol::is_path(f.type); });
  Submission checked = sub;
  if (names_paths) {
    // pi resolves relative paths against its cwd, the session's.
    auto confined = with_confined_paths(sub, session->launch().cwd);
    if (!confined) return reply(confined.failure());
    checked.envelope = std::move(confined.value());
  }
  // A hibernated session wakes first; the command waits in its lane meanwhile.
  awake_then(session, checked, std::move(reply), [](const Submission& sub, session::Session& session,
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
  // Confined before anything else is looked at: whether a directory outside the workspace
  // roots exists is none of the client's business.
  std::error_code ec;
  bool default_cwd = launch.cwd.empty();
  if (!default_cwd && !fs::path(launch.cwd).is_absolute())
    return reply(invalid(env, "Field 'cwd' must be an existing absolute directory"));
  auto cwd = confine(sub, default_cwd ? default_cwd_.string() : launch.cwd, {});
  if (!cwd) {
    auto r = protocol::error_response(
        env.type, env.id, cwd.status().code().value_or(ErrorCode::forbidden),
        (default_cwd ? "No 'cwd' given, and the default (" + default_cwd_.string() + ") is refused: "
                     : "Field 'cwd': ") +
            cwd.error());
    return reply(r);
  }
  if (!fs::is_directory(*cwd, ec))
    return reply(invalid(env, "Field 'cwd' must be an existing absolute directory"));
  launch.cwd = cwd->string();
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

  launch.owner = sub.principal.name;
  // A stored session's id belongs to its owner: nobody else may start a session under it.
  if (const auto* row = records_ && !session_id.empty() ? records_->find(session_id) : nullptr;
      row && row->owner != sub.principal.name)
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_exists,
                                          "Session already exists: " + session_id));
  sessions_.create(session_id, std::move(launch), sub.connection_id, sub.principal,
                   answer_created(sub, std::move(reply)));
}

session::SessionRegistry::Created ServerCommands::answer_created(const Submission& sub, Reply reply) {
  return [this, sub, reply = std::move(reply)](const std::string& id, Result<json> created) {
    const Envelope& env = sub.envelope;
    if (!created) {
      auto r = protocol::error_response(env.type, env.id,
                                        created.status().code().value_or(ErrorCode::agent_exited),
                                        created.error());
      // Which (perhaps generated) id failed; not for a refused duplicate.
      if (r.code != ErrorCode::session_exists) r.session_id = id;
      return reply(r);
    }
    json info = std::move(created.value());
    Response r = protocol::success_response(env.type, env.id,
                                            json{{"sessionId", id}, {"sessionInfo", info}});
    r.session_id = id;
    auto session = sessions_.find(id);
    if (session) r.session_version = session->version();
    reply(r);
    // The owner's connections hear of it (and admins').
    responder_.broadcast_to_owner(session ? session->owner() : sub.principal.name, "session_created",
                                  {{"sessionId", id}, {"sessionInfo", info}});
    reliability::log_command(log::Level::info,
                             env.type == "load_session" ? "session_loaded" : "session_created", sub,
                             {{"session", id}});
  };
}

void ServerCommands::delete_session(const Submission& sub, Reply reply) {
  const Envelope& env = sub.envelope;
  std::string id = *env.session_id;
  bool purge = env.body.value("purge", false);
  json data = {{"sessionId", id}, {"deleted", true}, {"purged", purge}};
  if (auto session = sessions_.find_for(id, sub.principal)) {
    // Answer once the agent is gone, so "deleted" means no process is left. The owner's
    // connections hear of it (and admins'), also when an admin deleted it.
    sessions_.remove(
        id,
        [this, id, env, data, owner = session->owner(), sub, reply] {
          reply(success(env, data));
          responder_.broadcast_to_owner(owner, "session_deleted", {{"sessionId", id}});
          reliability::log_command(log::Level::info, "session_deleted", sub);
        },
        purge);
    return;
  }
  // Not running: a purge may still remove its stored record.
  const auto* row = records_ ? records_->find(id) : nullptr;
  if (purge && row && (row->owner == sub.principal.name || sub.principal.admin) &&
      sessions_.purge_stored(id)) {
    reliability::log_command(log::Level::info, "session_purged", sub, {{"session", id}});
    return reply(success(env, data));
  }
  reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                 "Session not found: " + id));
}

void ServerCommands::list_stored_sessions(const Submission& sub, Reply reply) {
  // Stored sessions that are not running (DESIGN §9): load_session brings one back.
  json list = json::array();
  if (records_)
    for (const auto* row : records_->owned_by(sub.principal.name))
      if (!sessions_.contains(row->id)) list.push_back(session::SessionRecords::to_json(*row));
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, json{{"sessions", list}}));
}

void ServerCommands::load_session(const Submission& sub, Reply reply) {
  const Envelope& env = sub.envelope;
  const std::string& id = *env.session_id;
  const auto* row = records_ ? records_->find(id) : nullptr;
  if (!row || (row->owner != sub.principal.name && !sub.principal.admin))
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_not_found,
                                          "Session not found: " + id));
  if (sessions_.contains(id))
    return reply(protocol::error_response(env.type, env.id, ErrorCode::session_exists,
                                          "Session is already running: " + id));
  persistence::StoredSession copy = *row;  // the row may change while the agent starts
  sessions_.load(copy, sub.connection_id, answer_created(sub, std::move(reply)));
}

void ServerCommands::get_startup_recovery(const Submission& sub, Reply reply) {
  json data = recovery_ ? recovery_->for_principal(sub.principal.name)
                        : StartupRecovery{}.for_principal(sub.principal.name);
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, std::move(data)));
}

void ServerCommands::list_sessions(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id,
                                   json{{"sessions", sessions_.summaries(sub.principal)}}));
}

void ServerCommands::switch_session(const Submission& sub, Reply reply) {
  auto found = session_or_reply(sub, reply);
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
  // The buffered events follow the response, then the live stream. The response may wait
  // for the journal: the session's live events are held until the replay is out (no gap,
  // no duplicate, nothing before the response).
  if (resume) {
    session.hold_events();
    after_response_[sub.job_id] = [this, conn, replay = std::move(replay),
                                     weak = std::weak_ptr(sessions_.find(*env.session_id))] {
      auto s = weak.lock();
      if (!s) return;
      if (Connection* c = connections_.find(conn))
        for (const auto& [seq, frame] : replay.events) c->send_event(frame, s->id(), seq);
      s->release_events();
    };
  }
  reply(success(env, std::move(data)));
}

void ServerCommands::unsubscribe(const Submission& sub, Reply reply) {
  auto session = session_or_reply(sub, reply);
  if (!session) return;
  bool was = session->unsubscribe(sub.connection_id);
  reply(success(sub.envelope, json{{"wasSubscribed", was}}));
}

// ---------------------------------------------------------------- observability

void ServerCommands::get_metrics(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, metrics_.to_json(&sub.principal)));
}

void ServerCommands::health_check(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id, metrics_.health(&sub.principal)));
}

void ServerCommands::get_command_history(const Submission& sub, Reply reply) {
  reply(protocol::success_response(sub.envelope.type, sub.envelope.id,
                                   reliability::command_history(outcomes_, sub.principal.name,
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
