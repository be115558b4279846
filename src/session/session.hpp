#pragma once
// One session: what the daemon owns about it (id, subscribers, event seq, version, pending
// relayed commands) and the agent process that serves it. The agent is replaceable; the
// session outlives it. This is where the relay's hot path runs: each agent line is read as
// far as its top-level "type"/"id" and an event is wrapped and shared, never re-serialized.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/agent_channel.hpp"
#include "agent/agent_launch.hpp"
#include "connections/connection_registry.hpp"
#include "observability/metrics.hpp"
#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "pi_server/principal.hpp"
#include "pi_server/result.hpp"
#include "protocol/envelope.hpp"
#include "protocol/frames.hpp"
#include "session/event_ring.hpp"
#include "session/ui_dialogs.hpp"

namespace pi_server::session {

class Session;

// Commands sent to one agent and not yet answered, at most.
inline constexpr std::size_t kMaxPendingCommands = 1024;

// Answers one relayed command. Called exactly once.
using Completion = std::function<void(protocol::Response)>;

// Relay counters shared by all sessions (read by metrics).
struct RelayStats {
  std::uint64_t events_relayed = 0;
  std::uint64_t event_bytes_relayed = 0;
  std::uint64_t events_dropped = 0;
  std::uint64_t agent_lines_invalid = 0;
  std::uint64_t agent_lines_oversize = 0;
  std::uint64_t agent_responses_unmatched = 0;
  std::uint64_t agent_exits = 0;
  // posix_spawn runs on the loop thread: how long it blocks it (agent::ProcessLauncher).
  observability::Histogram spawn_time;
};

// What a session tells its owner.
class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  // The agent process ended (pending commands are already answered).
  virtual void on_agent_exited(Session& session, const agent::ExitStatus& status) = 0;
  // A run finished (agent_settled) or the last pending command was answered.
  virtual void on_session_quiet(Session& session) = 0;
  // What the agent's events say about its LLM provider: one per assistant message_end
  // (stopReason error = failure, aborted = neither), and each run's length at agent_settled.
  enum class ProviderResult { success, failure, aborted };
  virtual void on_provider_result(Session& session, const std::string& provider,
                                  ProviderResult result) {}
  virtual void on_run_finished(Session& session, const std::string& provider,
                               std::chrono::steady_clock::duration length) {}
  // A successful `command` bumped the session's version (called before it is answered).
  virtual void on_session_changed(Session& session, std::string_view command) {}
};

// Shared by every session; owned by whoever owns the sessions (outlives them).
struct SessionContext {
  const Clock& clock;
  Scheduler& scheduler;
  agent::AgentLauncher& launcher;
  ConnectionRegistry& connections;
  RelayStats& stats;
  SessionObserver& observer;
  const AgentOptions& agent_options;
  std::size_t event_buffer_bytes;
};

class Session {
 public:
  // Keeps references to what `context` refers to, not to `context` itself. `owner` is the
  // name of the principal that created it.
  Session(SessionContext& context, std::string id, agent::SessionLaunch launch,
          std::string owner = local_principal().name);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& id() const { return id_; }
  const agent::SessionLaunch& launch() const { return launch_; }
  // The principal that created it. Only it and admins see the session; to anyone else it
  // does not exist (session_not_found, absent from lists and metrics).
  const std::string& owner() const { return owner_; }
  bool visible_to(const Principal& principal) const {
    return principal.admin || principal.name == owner_;
  }

  // Starts the agent (through the context's launcher). The failure's message is what the
  // client is told.
  Status start_agent();
  // Takes over an agent that is already running (a warm pool's): `bind` hands it this
  // session's callbacks.
  void adopt_agent(std::shared_ptr<agent::AgentChannel> agent,
                   const std::function<void(agent::AgentCallbacks)>& bind);
  // The private agent dir its agents run on from now on (a pooled agent brought its own).
  void set_agent_dir(std::filesystem::path dir) { launch_.agent_dir = std::move(dir); }
  bool agent_running() const { return agent_ && !agent_->exited(); }
  std::optional<pid_t> agent_pid() const;
  // Set once the first agent answered: only then does a crash lead to a restart.
  void mark_ready() { ready_ = true; }
  bool ready() const { return ready_; }

  // Sends a session command to the agent; `done` gets the agent's answer mapped back to the
  // client's id and type, or agent_exited if the agent dies first.
  void relay(const protocol::Envelope& envelope, Completion done);
  // extension_ui_response: forwards the first answer to a pending dialog to the agent (pi's
  // shape or protocol 1.x's), anything else is not_pending. Never waits for the agent.
  void answer_ui(const protocol::Envelope& envelope, Completion done);

  void subscribe(std::uint64_t connection_id) { subscribers_.insert(connection_id); }
  bool unsubscribe(std::uint64_t connection_id) { return subscribers_.erase(connection_id) > 0; }
  bool is_subscribed(std::uint64_t connection_id) const {
    return subscribers_.count(connection_id) > 0;
  }
  std::size_t subscriber_count() const { return subscribers_.size(); }
  const std::set<std::uint64_t>& subscribers() const { return subscribers_; }
  // While an answer of this session waits for its outcome to be durable (the journal's
  // group commit), the events the agent sends meanwhile wait too: a client still gets a
  // command's response before the events it caused. Holds nest; events keep their seq and
  // enter the resume buffer at once.
  void hold_events() { ++holds_; }
  void release_events();
  // Sends a server event (never dropped) to every subscriber (held like events, above).
  void send_to_subscribers(const Frame& frame);

  // Restart bookkeeping: true if another restart fits the policy now (and records it);
  // `delay` gets the backoff to wait first.
  bool claim_restart(std::chrono::milliseconds& delay);
  std::size_t restarts_total() const { return restarts_total_; }
  // Pending extension UI dialogs (ids), oldest first.
  std::vector<std::string> pending_ui_ids() const { return ui_.ids(); }

  // Stops the agent gracefully (EOF, SIGTERM, SIGKILL); `done` runs once it is reaped.
  // Pending commands are answered with agent_exited.
  void stop(std::function<void()> done);

  // No run in progress and no command waiting for the agent.
  bool quiet() const { return !running_ && pending_.empty(); }

  // Hibernation (session/hibernation.hpp decides when): the agent is stopped, everything the
  // daemon keeps (subscribers, seq, event ring, version) stays, and a later start resumes the
  // same pi session file (`--continue` in the session's own dir).
  enum class Dormancy { awake, hibernating, hibernated, waking };
  Dormancy dormancy() const { return dormancy_; }
  void set_dormancy(Dormancy d) { dormancy_ = d; }
  // Could hibernate now: awake, agent running, quiet, no open dialog, not being deleted.
  bool idle() const;
  // When a command, answer or run end last happened (what "idle for" counts from).
  SteadyTime last_active() const { return last_active_; }
  // Stops the agent gracefully (EOF first) without forgetting the session; `done` runs once
  // it is reaped, whatever its exit status. The session is then hibernated.
  void hibernate(std::function<void()> done);
  // Commands waiting for a wake-up; answered by whoever wakes the session.
  using WakeWaiter = std::function<void(Status)>;
  void add_wake_waiter(WakeWaiter w) { wake_waiters_.push_back(std::move(w)); }
  std::vector<WakeWaiter> take_wake_waiters() { return std::exchange(wake_waiters_, {}); }
  // Asks the agent a first get_state (proves it runs); `done` gets the answer.
  void probe(Completion done);
  // delete_session or shutdown has begun.
  bool stopping() const { return stopping_; }
  // A compaction (manual compact or pi's auto-compaction) is running.
  bool compacting() const { return compacting_; }
  std::uint64_t version() const { return version_; }
  SystemTime created_at() const { return created_at_; }
  SystemTime last_activity_at() const { return last_activity_at_; }
  // A stored session coming back (load_session, --resume-sessions) keeps its version and
  // creation time.
  void restore(std::uint64_t version, SystemTime created_at, SystemTime last_activity_at) {
    version_ = version;
    created_at_ = created_at;
    last_activity_at_ = last_activity_at;
  }
  // What the agent reports after a change (get_state): the file it is on (resumed by the
  // next agent start), its model and the session's name.
  void set_identity(std::filesystem::path session_file, std::string model, std::string name) {
    launch_.session_file = std::move(session_file);
    if (!model.empty()) launch_.model = std::move(model);
    launch_.name = std::move(name);
  }
  // The LLM provider this session talks to: from its model, then from what the agent's
  // assistant messages report.
  const std::string& provider() const { return provider_; }
  std::uint64_t last_seq() const { return next_seq_ - 1; }

  // Resume: what the event buffer holds after `after_seq`.
  using Replay = EventRing::Replay;
  Replay events_after(std::uint64_t after_seq) const { return ring_.after(after_seq); }

  // {sessionId, name?, cwd, model, state, createdAt, lastActivityAt, subscriberCount}
  nlohmann::json summary() const;

 private:
  struct Pending {
    std::string client_type;
    std::optional<std::string> client_id;
    Completion done;
  };

  agent::AgentCallbacks make_callbacks();
  void on_agent_line(std::string_view line);
  void on_agent_response(std::string_view line, std::string_view raw_id);
  void on_agent_event(std::string_view line, std::string_view type, std::string_view raw_id);
  void track_ui_request(std::string_view line, std::string_view raw_id);
  // ui_'s OnCancel: answers a dialog on the agent's behalf with {"cancelled":true} (what
  // pi's own UI sends when a dialog is dismissed) and tells subscribers it is gone.
  void on_ui_cancelled(const std::string& ui_id, std::string_view reason);
  std::string client_event_line(std::string_view line, std::string_view raw_id);
  void on_agent_stderr(std::string_view line);
  void observe_message_end(std::string_view line);
  void on_agent_exit(const agent::ExitStatus& status);
  void fail_pending(const std::string& message);
  void send_event(std::uint64_t seq, const Frame& frame);
  void touch();
  const char* state_name() const;

  const Clock& clock_;
  agent::AgentLauncher& launcher_;
  ConnectionRegistry& connections_;
  RelayStats& stats_;
  SessionObserver& observer_;
  const AgentOptions& agent_options_;
  std::string id_;
  std::string owner_;
  std::string quoted_id_;  // json_quote(id_), spliced into every event envelope
  agent::SessionLaunch launch_;

  std::shared_ptr<agent::AgentChannel> agent_;
  std::set<std::uint64_t> subscribers_;
  std::unordered_map<std::string, Pending> pending_;  // by the daemon's agent-side id
  std::uint64_t next_agent_id_ = 1;
  std::uint64_t next_seq_ = 1;
  // The newest event frames, for resume.
  EventRing ring_;
  std::uint64_t version_ = 0;
  std::size_t holds_ = 0;
  std::deque<std::pair<std::uint64_t, Frame>> held_;  // events waiting for release_events
  bool running_ = false;
  bool compacting_ = false;  // between compaction_start and compaction_end (manual or auto)
  std::string provider_;
  SteadyTime run_started_{};
  UiDialogs ui_;
  std::deque<SteadyTime> restart_times_;
  std::size_t restarts_total_ = 0;
  bool stopping_ = false;
  bool ready_ = false;
  std::function<void()> stopped_;
  Dormancy dormancy_ = Dormancy::awake;
  std::function<void()> hibernated_;  // hibernate()'s `done`
  std::vector<WakeWaiter> wake_waiters_;
  SystemTime created_at_;
  SystemTime last_activity_at_;
  SteadyTime last_active_;

  // agent stderr rate limit: lines per one-second window
  SteadyTime stderr_window_start_{};
  std::size_t stderr_in_window_ = 0;
  std::size_t stderr_suppressed_ = 0;
};

}  // namespace pi_server::session
