#pragma once
// The sessions that exist, and their lifecycle: create (start the agent, wait for its first
// answer), delete (answer once the agent is reaped), lookup, restart of an agent that exits
// on its own (backoff), and stopping them all at shutdown. It is every Session's observer
// and passes what agents report about their provider on to admission (the breakers).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "agent/agent_channel.hpp"
#include "agent/agent_launch.hpp"
#include "pi_server/clock.hpp"
#include "connections/connection_registry.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"
#include "reliability/command_pipeline.hpp"
#include "session/hibernation.hpp"
#include "session/provider_feedback.hpp"
#include "session/session.hpp"
#include "session/session_records.hpp"
#include "session/warm_pool.hpp"

namespace pi_server::session {

class SessionRegistry : public SessionObserver,
                        public reliability::SessionVersions,
                        public ProviderLookup {
 public:
  // `launcher` starts agents (ProcessLauncher in the daemon, a fake in unit tests);
  // `relay_stats` collects every session's relay counters.
  SessionRegistry(const Clock& clock, Scheduler& scheduler, agent::AgentLauncher& launcher,
                  const ServerOptions& options, ConnectionRegistry& connections,
                  RelayStats& relay_stats);
  ~SessionRegistry() override;

  // Where provider results go (the admission policy's breakers). Set once, before any
  // session exists.
  void set_provider_feedback(ProviderFeedback* feedback) { feedback_ = feedback; }
  // Where sessions are stored (created, changed, deleted). Set once, before any session
  // exists; without it nothing is stored.
  void set_records(SessionRecords* records) { records_ = records; }

  // Creates a session (a random id when `session_id` is empty) and starts its agent;
  // `done` gets the session's id and its info once the agent answered a first get_state, or
  // a failure with its wire code (session_exists, limit_reached, agent_exited). The creator
  // is subscribed if still connected; `owner` owns the session (limited to
  // max_sessions_per_principal of them when that is set).
  using Created = std::function<void(const std::string& session_id, Result<nlohmann::json> info)>;
  void create(std::string session_id, agent::SessionLaunch launch, std::uint64_t creator,
              const Principal& owner, Created done);
  // Starts a stored session again (load_session, --resume-sessions): its owner, cwd, model,
  // name, pi session file, sessionVersion and creation time come from `row`. `done` as create's.
  void load(const persistence::StoredSession& row, std::uint64_t creator, Created done);
  // Removes the session at once (lookups fail from now on) and stops its agent; `done`
  // runs once the agent is reaped. Its stored row stays loadable ("stopped"), or with
  // `purge` is removed. False if there is no such session.
  bool remove(const std::string& session_id, std::function<void()> done, bool purge = false);
  // Purges a stored session that is not running: its row, its private agent dir, and (with
  // --purge-session-files) its session dir. False if there is no such row.
  bool purge_stored(const std::string& session_id);
  // Stops every agent (shutdown); `done` runs once all are reaped. No restarts after this.
  void stop_all(std::function<void()> done);

  // Any session, whoever owns it (the daemon's own bookkeeping).
  std::shared_ptr<Session> find(const std::string& session_id) const;
  // The session as `asker` sees it: null when there is none or it is someone else's.
  std::shared_ptr<Session> find_for(const std::string& session_id, const Principal& asker) const;
  // Whether `folder` (a name under <state>/sessions/) is the folder of a session `asker` may
  // see. Usually the session's id; a session that took a pooled agent keeps the pool's name.
  bool folder_visible_to(std::string_view folder, const Principal& asker) const;
  // Sessions owned by `principal_name`, those still stopping included.
  std::size_t count_owned_by(const std::string& principal_name) const;
  bool contains(const std::string& session_id) const { return sessions_.count(session_id) > 0; }
  std::size_t size() const { return sessions_.size(); }
  // Deleted sessions whose agent is still stopping.
  std::size_t stopping() const { return stopping_.size(); }
  // No run in progress and nothing waiting for an agent, in any session.
  bool all_quiet() const;
  // list_sessions: the summary of every session `asker` may see.
  nlohmann::json summaries(const Principal& asker) const;
  // The connection is gone: it is no longer anybody's subscriber.
  void unsubscribe_everywhere(std::uint64_t connection_id);

  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [id, s] : sessions_) f(*s);
  }

  // Runs `then` once the session's agent is awake (waking a hibernated one first).
  void ensure_awake(const std::shared_ptr<Session>& session, std::function<void(Status)> then) {
    hibernation_.ensure_awake(session, std::move(then));
  }
  const Hibernation& hibernation() const { return hibernation_; }
  // Starts the warm pool (once the loop runs).
  void start_warm_pool() { pool_.start(); }
  const WarmPool& warm_pool() const { return pool_; }

  const RelayStats& relay_stats() const { return relay_stats_; }
  std::uint64_t agent_restarts() const { return agent_restarts_; }

  // reliability::SessionVersions
  std::optional<std::uint64_t> session_version(const std::string& session_id,
                                               const Principal& asker) const override;
  bool hidden_from(const std::string& session_id, const Principal& asker) const override;
  // ProviderLookup
  std::string provider_of(const std::string& session_id, const Principal& asker) const override;
  // SessionObserver
  void on_agent_exited(Session& session, const agent::ExitStatus& status) override;
  void on_session_quiet(Session& session) override;
  void on_session_changed(Session& session, std::string_view command) override;
  void on_provider_result(Session& session, const std::string& provider,
                          ProviderResult result) override;
  void on_run_finished(Session& session, const std::string& provider,
                       std::chrono::steady_clock::duration length) override;

 private:
  // <state>/sessions/<id>/: pi's session files; <id>/agent/: the session's own agent dir.
  Result<std::filesystem::path> prepare_session_dirs(const std::string& session_id);
  // The common part of create and load.
  void start(std::string session_id, agent::SessionLaunch launch, std::uint64_t creator,
             const persistence::StoredSession* restored, Created done);
  // Removes a private agent dir no agent runs on any more (and a pool folder it leaves empty).
  void discard_agent_dir(const std::string& session_id, const std::filesystem::path& session_dir,
                         const std::filesystem::path& agent_dir);
  // After a delete: the private agent dir goes (load rebuilds it); the session dir too when
  // it holds nothing else, or on a purge with --purge-session-files.
  void clean_session_dirs(const std::string& session_id, const std::filesystem::path& base,
                          bool purge);
  // Asks the agent where it is now (file, model, name) and stores it.
  void refresh_identity(const std::shared_ptr<Session>& session, bool model_changed);
  // Asks the new session's agent its first get_state (after re-pointing a pooled agent at
  // the session's cwd); `done` as create's.
  void finish_create(const std::shared_ptr<Session>& session, Created done);
  // The session's agent answered get_state with `data`: it is ready; `done` gets its info.
  void answer_created(const std::shared_ptr<Session>& session, const nlohmann::json& data,
                      Created done);
  void schedule_restart(const std::shared_ptr<Session>& session, std::chrono::milliseconds delay);
  // Destroys `session` on a later turn of the loop (never inside its own callback).
  void bury(std::shared_ptr<Session> session);
  // Keeps `session` alive until its agent is reaped, then runs `done`.
  void stop_and_forget(const std::shared_ptr<Session>& session, std::function<void()> done);

  Scheduler& scheduler_;
  const ServerOptions& options_;
  ConnectionRegistry& connections_;
  RelayStats& relay_stats_;
  ProviderFeedback* feedback_ = nullptr;
  SessionRecords* records_ = nullptr;
  // What every Session is built with (this registry is their observer).
  SessionContext context_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  WarmPool pool_;
  Hibernation hibernation_;  // reads sessions_, takes from pool_
  std::unordered_map<Session*, std::shared_ptr<Session>> stopping_;
  std::uint64_t agent_restarts_ = 0;
  std::vector<std::shared_ptr<Session>> graveyard_;  // see bury()
  bool stopped_all_ = false;
  std::function<void()> all_stopped_;  // stop_all's `done`, once stopping_ is empty
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace pi_server::session
