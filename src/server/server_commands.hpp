#pragma once
// Executes started commands (the pipeline's Executor), by the command table: server
// commands run their handler here, session commands go to their session (relayed to its
// agent, or answered by the session itself). Handlers are registered by name; every
// server row of the table has one (a unit test checks).
#include <cstdint>
#include <set>
#include <string_view>

#include "connections/connection_registry.hpp"
#include "reliability/command_pipeline.hpp"
#include "reliability/outcome_store.hpp"
#include "server/metrics_report.hpp"
#include "server/responder.hpp"
#include "session/session_registry.hpp"

namespace pi_server::server {

class ServerCommands : public reliability::Executor {
 public:
  ServerCommands(session::SessionRegistry& sessions, ConnectionRegistry& connections,
                 Responder& responder, const reliability::OutcomeStore& outcomes,
                 const MetricsReport& metrics)
      : sessions_(sessions),
        connections_(connections),
        responder_(responder),
        outcomes_(outcomes),
        metrics_(metrics) {}

  void execute(const reliability::Submission& submission, Reply reply) override;

  // From now on, commands that start are answered shutting_down (the sessions are going).
  void begin_drain() { draining_ = true; }
  // Whether this connection wants command_* lifecycle events (set_lifecycle_events).
  bool wants_lifecycle_events(std::uint64_t connection_id) const {
    return !lifecycle_opt_out_.count(connection_id);
  }
  void forget_connection(std::uint64_t connection_id) { lifecycle_opt_out_.erase(connection_id); }

  // True if `type` has a handler here (for the table check).
  static bool has_handler(std::string_view type);

 private:
  using Handler = void (ServerCommands::*)(const reliability::Submission&, Reply);
  static Handler handler_for(std::string_view type);

  void create_session(const reliability::Submission& sub, Reply reply);
  void delete_session(const reliability::Submission& sub, Reply reply);
  void list_sessions(const reliability::Submission& sub, Reply reply);
  void switch_session(const reliability::Submission& sub, Reply reply);
  void unsubscribe(const reliability::Submission& sub, Reply reply);
  void get_metrics(const reliability::Submission& sub, Reply reply);
  void health_check(const reliability::Submission& sub, Reply reply);
  void get_command_history(const reliability::Submission& sub, Reply reply);
  void set_lifecycle_events(const reliability::Submission& sub, Reply reply);
  // Session commands: to the session's agent (or the session itself).
  void to_session(const reliability::Submission& sub, Reply reply);
  // switch_session once the session is awake: subscribe, replay.
  void attach(const reliability::Submission& sub, session::Session& session, const Reply& reply);
  // Runs `step` once the session's agent is awake (at once if it is); a failed wake-up is
  // the command's answer.
  using SessionStep = std::function<void(const reliability::Submission&, session::Session&, Reply)>;
  void awake_then(const std::shared_ptr<session::Session>& session,
                  const reliability::Submission& sub, Reply reply, SessionStep step);
  // The session a command names; if there is none, answers session_not_found and returns null.
  std::shared_ptr<session::Session> session_or_reply(const protocol::Envelope& env,
                                                     const Reply& reply) const;

  session::SessionRegistry& sessions_;
  ConnectionRegistry& connections_;
  Responder& responder_;
  const reliability::OutcomeStore& outcomes_;
  const MetricsReport& metrics_;
  // Connections that opted out of command_* lifecycle events.
  std::set<std::uint64_t> lifecycle_opt_out_;
  bool draining_ = false;
};

}  // namespace pi_server::server
