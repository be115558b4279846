#pragma once
// Agents started ahead (DESIGN §11 "Warm pool"): each in its own session dir with its own
// private agent dir, in the daemon's cwd, switched once to a fresh header-only session file
// there (pi's first switch is its slow one) and asked get_state. create_session takes
// one instead of spawning (a pi start costs ~0.3 s of CPU); for another cwd the session
// re-points it with switch_session to a header-only session file naming that cwd (pi
// rebuilds tools, context files and system prompt for it). The pool refills on a later turn
// of the loop. Sessions whose agent needs its own command line (model, thinking level, name)
// bypass it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_channel.hpp"
#include "agent/agent_launch.hpp"
#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::session {

struct PooledAgent {
  std::shared_ptr<agent::AgentChannel> agent;
  // Hands the agent its new owner's callbacks (until then the pool listens).
  std::function<void(agent::AgentCallbacks)> bind;
  std::filesystem::path session_dir;  // becomes the session's
  std::filesystem::path agent_dir;
  std::string cwd;  // where the agent runs now
  nlohmann::json state;  // its answer to the pool's get_state (data), when it had one
  // The header-only file the pool switched it to (empty if none). The session's file when
  // nothing else is asked of it; once switched elsewhere, an empty leftover to remove.
  std::filesystem::path placeholder_file;
};

struct WarmPoolStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;     // the pool had no ready agent
  std::uint64_t bypassed = 0;   // the session needs flags of its own
  std::uint64_t started = 0;
  std::uint64_t failed = 0;     // pool agents that did not start or died waiting
};

class WarmPool {
 public:
  WarmPool(Scheduler& scheduler, agent::AgentLauncher& launcher, const ServerOptions& options);
  ~WarmPool();
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Starts filling (the daemon calls it once the loop runs; unit tests of other parts never).
  // Also removes what pooled agents of an earlier run left in <state>/sessions/pool-*: their
  // agent dirs (no agent runs on them now) and the folders that then hold nothing.
  void start();
  // A ready agent for a session launched like `launch`, or nullopt (then spawn as usual).
  // `accept` (optional) sees the candidate's private agent dir and may refuse it: that
  // counts as bypassed.
  std::optional<PooledAgent> take(
      const agent::SessionLaunch& launch,
      const std::function<bool(const std::filesystem::path& agent_dir)>& accept = {});
  // Whether a session launched like `launch` could use a pooled agent at all.
  static bool fits(const agent::SessionLaunch& launch);
  // Shutdown: stop every pooled agent (gracefully) and start no more.
  void stop_all();

  const WarmPoolStats& stats() const { return stats_; }
  std::size_t ready() const;
  std::size_t size() const { return entries_.size(); }
  const std::string& default_cwd() const { return default_cwd_; }

 private:
  struct Entry;
  void refill();
  void spawn_one();
  void on_line(const std::shared_ptr<Entry>& entry, std::string_view line);
  void on_exit(const std::shared_ptr<Entry>& entry);

  Scheduler& scheduler_;
  agent::AgentLauncher& launcher_;
  const ServerOptions& options_;
  std::string default_cwd_;
  std::vector<std::shared_ptr<Entry>> entries_;
  WarmPoolStats stats_;
  bool started_ = false;
  bool stopped_ = false;
  bool refill_scheduled_ = false;
  std::uint32_t failures_in_a_row_ = 0;
  std::uint64_t next_id_ = 1;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// `<dir>/<time>_<uuid>.jsonl` holding only a pi session header naming `cwd`: what a running
// pi re-points itself to with switch_session. After the switch pi reports `path` as its
// sessionFile and `id` (the header's) as its sessionId.
struct HeaderOnlySession {
  std::filesystem::path path;
  std::string id;
};
Result<HeaderOnlySession> write_header_only_session(const std::filesystem::path& dir,
                                                    const std::string& cwd);

}  // namespace pi_server::session
