#pragma once
// The seam between a Session and its agent: what a session needs of a running agent
// (AgentProcess in production, a fake in tests) and who starts one (ProcessLauncher in
// production). Keeps processes, pipes and Asio out of the session's unit tests.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/agent_launch.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::agent {

// How a process ended: an exit code or a signal number.
struct ExitStatus {
  std::optional<int> exit_code;
  std::optional<int> signal;
};

// What an agent reports to its owner. All calls on the loop thread.
struct AgentCallbacks {
  std::function<void(std::string_view line)> on_line;
  // A stdout line over the limit was discarded (its length).
  std::function<void(std::size_t bytes)> on_oversize_line;
  std::function<void(std::string_view line)> on_stderr_line;
  // Called once, after the process is reaped and its stdout has been read to the end
  // (so every line it wrote is delivered before this).
  std::function<void(ExitStatus)> on_exit;
};

// What a Session needs of its running agent (AgentProcess in production, a fake in tests).
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  virtual pid_t pid() const = 0;
  // True once on_exit has been reported.
  virtual bool exited() const = 0;
  // Queues one line (a '\n' is appended) for the agent's stdin. Dropped after stop().
  virtual void write_line(std::string line) = 0;
  // Graceful stop: closes stdin; after eof_grace SIGTERM; after term_grace more SIGKILL.
  // on_exit fires as usual when it is gone.
  virtual void stop(std::chrono::milliseconds eof_grace, std::chrono::milliseconds term_grace) = 0;
  // Ends the agent now (SIGKILL to its process group).
  virtual void kill_now() = 0;
  // Forget the callbacks: the owner is going away.
  virtual void detach() = 0;
};

// Starts agents. The callbacks are the new agent's; the channel is shared because a real
// process outlives its owner until its pending I/O finishes.
class AgentLauncher {
 public:
  virtual ~AgentLauncher() = default;
  // A failure's message is what the client is told ("Could not start the agent (...): ...").
  virtual Result<std::shared_ptr<AgentChannel>> launch(const AgentOptions& options,
                                                       const SessionLaunch& launch,
                                                       AgentCallbacks callbacks) = 0;
};

}  // namespace pi_server::agent
