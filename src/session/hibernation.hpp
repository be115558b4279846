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

namespace pi_server::session {

struct HibernationStats {
  std::uint64_t hibernations = 0;
  std::uint64_t wakes = 0;
  std::uint64_t wake_failures = 0;
  // From the command that found the session asleep to the new agent's first answer.
  observability::Histogram wake_time;
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

  const HibernationStats& stats() const { return stats_; }
  std::size_t hibernated_count() const;

 private:
  void arm(const std::shared_ptr<Session>& session, std::chrono::milliseconds delay);
  void on_timer(const std::weak_ptr<Session>& weak);
  // Stops the agent; once reaped: session_hibernated, and a wake-up if commands came meanwhile.
  void sleep(const std::shared_ptr<Session>& session);
  void wake(const std::shared_ptr<Session>& session);
  void finish_wake(Session& session, Status status);
  // Hibernates least recently used idle sessions (other than `keep`) while over the cap.
  void enforce_live_cap(const Session* keep);

  const Clock& clock_;
  Scheduler& scheduler_;
  const HibernationOptions& options_;
  const Sessions& sessions_;
  HibernationStats stats_;
  std::unordered_map<std::string, Scheduler::Handle> timers_;
  // When each wake-up under way began.
  std::unordered_map<std::string, SteadyTime> waking_since_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace pi_server::session
