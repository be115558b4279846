#pragma once
// Executes started commands (the pipeline's Executor), by the command table: server
// commands run their handler here, session commands go to their session (relayed to its
// agent, or answered by the session itself). Handlers are registered by name; every
// server row of the table has one (a unit test checks).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string_view>

#include "connections/connection_registry.hpp"
#include "reliability/command_pipeline.hpp"
#include "reliability/outcome_store.hpp"
#include "security/path_confinement.hpp"
#include "server/metrics_report.hpp"
#include "server/responder.hpp"
#include "server/startup_recovery.hpp"
#include "session/session_records.hpp"
#include "session/session_registry.hpp"

namespace pi_server::server {

class ServerCommands : public reliability::Executor {
 public:
  // `paths` confines the path fields of commands; `default_cwd` is the cwd of a session
  // whose create_session names none.
  ServerCommands(session::SessionRegistry& sessions, ConnectionRegistry& connections,
                 Responder& responder, const reliability::OutcomeStore& outcomes,
                 const MetricsReport& metrics, const security::PathConfinement& paths,
                 std::filesystem::path default_cwd)
      : sessions_(sessions),
        connections_(connections),
        responder_(responder),
        outcomes_(outcomes),
        metrics_(metrics),
        paths_(paths),
        default_cwd_(std::move(default_cwd)) {}

  void execute(const reliability::Submission& submission, Reply reply) override;
  void hold(const reliability::Submission& submission) override;
  void release(const reliability::Submission& submission) override;
  // The stored sessions (null: nothing is stored) and what this start recovered.
  void set_persistence(session::SessionRecords* records, const StartupRecovery* recovery) {
    records_ = records;
    recovery_ = recovery;
  }

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
  void list_stored_sessions(const reliability::Submission& sub, Reply reply);
  void load_session(const reliability::Submission& sub, Reply reply);
  void get_startup_recovery(const reliability::Submission& sub, Reply reply);
  // create_session's and load_session's answer once the agent is up.
  session::SessionRegistry::Created answer_created(const reliability::Submission& sub, Reply reply);
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
  // The session a command names, as its principal sees it; if there is none (or it is
  // someone else's), answers session_not_found and returns null.
  std::shared_ptr<session::Session> session_or_reply(const reliability::Submission& sub,
                                                     const Reply& reply) const;
  // `path` resolved inside the workspace roots for `sub`'s principal (relative to `base`).
  Result<std::filesystem::path> confine(const reliability::Submission& sub, std::string_view path,
                                        const std::filesystem::path& base) const;
  // The command with every path field of its row (FieldType::path) confined and replaced by
  // its resolved form, or the refusal to answer.
  Result<protocol::Envelope, protocol::Response> with_confined_paths(
      const reliability::Submission& sub, const std::filesystem::path& base) const;

  session::SessionRegistry& sessions_;
  ConnectionRegistry& connections_;
  Responder& responder_;
  const reliability::OutcomeStore& outcomes_;
  const MetricsReport& metrics_;
  const security::PathConfinement& paths_;
  std::filesystem::path default_cwd_;
  session::SessionRecords* records_ = nullptr;
  const StartupRecovery* recovery_ = nullptr;
  // Sessions whose events are held for a response waiting for the journal (by hold()).
  std::map<std::uint64_t, std::weak_ptr<session::Session>> held_;  // by job_id
  // What must follow a response (switch_session's buffered events), by the job's Submission.
  std::map<std::uint64_t, std::function<void()>> after_response_;  // by job_id
  // Connections that opted out of command_* lifecycle events.
  std::set<std::uint64_t> lifecycle_opt_out_;
  bool draining_ = false;
};

}  // namespace pi_server::server
