#pragma once
// When sessions sleep and how they wake (DESIGN §11 "Hibernation"). A session idle for
// `after` (no run, no pending command or dialog; subscribers do not count) has its agent
// stopped gracefully; the session itself stays. The next command that needs the agent
// waits here while a new agent starts on the same pi session file, then goes on. With a cap
// on live agents the least recently used idle sessions sleep first.
//
// One timer per awake session, armed when it goes quiet; time comes from the Clock and
// Scheduler seam, so tests drive it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "observability/metrics.hpp"
#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"
#include "session/session.hpp"
#include "session/warm_pool.hpp"

namespace pi_server::session {

struct HibernationStats {
  std::uint64_t hibernations = 0;
  std::uint64_t wakes = 0;
  std::uint64_t wakes_from_pool = 0;  // of `wakes`: on a pooled agent
  std::uint64_t wake_failures = 0;
  // From the command that found the session asleep to the new agent's first answer.
  observability::Histogram wake_time;
};

// Where a waking session may get a running agent instead of starting one (the registry's
// warm pool), and who tidies the agent dir it stops using.
struct WakeSource {
  // A pooled agent for `session`, or nullopt: then a cold start.
  std::function<std::optional<PooledAgent>(const Session& session)> take;
  // `session` now runs on another agent dir; `old_dir` is no longer used by any process.
  std::function<void(const Session& session, const std::filesystem::path& old_dir)> release_agent_dir;
};

class Hibernation {
 public:
  using Sessions = std::map<std::string, std::shared_ptr<Session>>;
  // `sessions` is the registry's map (read to find the least recently used).
  Hibernation(const Clock& clock, Scheduler& scheduler, const HibernationOptions& options,
              const Sessions& sessions);
  ~Hibernation();

  // The session became quiet (or just started/woke): (re)arm its idle timer, and apply the
  // live-agent cap.
  void on_quiet(const std::shared_ptr<Session>& session);
  // The session is gone from the registry: no timer for it any more.
  void forget(const std::string& session_id);
  // Runs `then` once the session's agent is awake: at once if it is, else after a wake-up
  // (started here if none is under way). A failed wake-up passes its error (agent_exited).
  void ensure_awake(const std::shared_ptr<Session>& session, std::function<void(Status)> then);
  // Puts `session` to sleep now if it is idle. Returns whether it began.
  bool hibernate(const std::shared_ptr<Session>& session, std::string_view reason);

  void set_wake_source(WakeSource source) { wake_source_ = std::move(source); }

  const HibernationStats& stats() const { return stats_; }
  std::size_t hibernated_count() const;

 private:
  void arm(const std::shared_ptr<Session>& session, std::chrono::milliseconds delay);
  void on_timer(const std::weak_ptr<Session>& weak);
  // Stops the agent; once reaped: session_hibernated, and a wake-up if commands came meanwhile.
  void sleep(const std::shared_ptr<Session>& session);
  void wake(const std::shared_ptr<Session>& session);
  // Wake-up on a pooled agent: it switches to the session's file.
  void wake_on(const std::shared_ptr<Session>& session, PooledAgent pooled);
  // The new agent answered: awake; subscribers and waiters hear it.
  void woke(const std::shared_ptr<Session>& session, bool from_pool);
  // The new agent did not answer well (`why`): stopped again; the waiters get agent_exited.
  void wake_failed(const std::shared_ptr<Session>& session, const std::string& why);
  void finish_wake(Session& session, Status status);
  // Hibernates least recently used idle sessions (other than `keep`) while over the cap.
  void enforce_live_cap(const Session* keep);

  const Clock& clock_;
  Scheduler& scheduler_;
  const HibernationOptions& options_;
  const Sessions& sessions_;
  HibernationStats stats_;
  WakeSource wake_source_;
  std::unordered_map<std::string, Scheduler::Handle> timers_;
  // When each wake-up under way began.
  std::unordered_map<std::string, SteadyTime> waking_since_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace pi_server::session
