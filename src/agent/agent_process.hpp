#pragma once
// One running agent child process, driven from the event loop: lines from its stdout,
// rate-limited stderr lines, a write queue to its stdin, exit notification through its
// pidfd, and a graceful stop (EOF, then SIGTERM, then SIGKILL to its process group).
// Never blocks the loop: a slow or stuck agent only fills its own queues.
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent_channel.hpp"
#include "agent/spawner.hpp"
#include "protocol/line_framer.hpp"

namespace pi_server::agent {

struct AgentLimits {
  std::size_t max_line_bytes = 256u << 20;
  std::size_t max_stderr_line_bytes = 8192;
};

class AgentProcess : public AgentChannel, public std::enable_shared_from_this<AgentProcess> {
 public:
  // Takes ownership of the spawned process's descriptors and starts reading.
  static std::shared_ptr<AgentProcess> adopt(boost::asio::io_context& io, SpawnedProcess process,
                                             AgentCallbacks callbacks, AgentLimits limits);
  ~AgentProcess() override;

  pid_t pid() const override { return pid_; }
  bool exited() const override { return exit_status_.has_value(); }

  // Queues one line (a '\n' is appended) for the agent's stdin. Dropped after stop().
  void write_line(std::string line) override;

  // Graceful stop: closes stdin; after eof_grace sends SIGTERM to the process group; after
  // term_grace more sends SIGKILL. on_exit fires as usual when it is gone.
  void stop(std::chrono::milliseconds eof_grace, std::chrono::milliseconds term_grace) override;
  // SIGKILL to the process group now.
  void kill_now() override;
  // Forget the callbacks: the owner is going away. The process object stays alive until
  // its pending operations finish.
  void detach() override;

  AgentProcess(boost::asio::io_context& io, SpawnedProcess process, AgentCallbacks callbacks,
               AgentLimits limits);

 private:
  class StdoutSink;
  class StderrSink;
  void start();
  void read_stdout();
  void read_stderr();
  void watch_exit();
  void write_next();
  // Stdin is closed: the queued lines will never be written. The one being written stays
  // until its write completes (the operation reads from it).
  void drop_queued_writes();
  void maybe_report_exit();
  void signal_group(int sig);

  boost::asio::io_context& io_;
  pid_t pid_;
  boost::asio::posix::stream_descriptor stdin_;
  boost::asio::posix::stream_descriptor stdout_;
  boost::asio::posix::stream_descriptor stderr_;
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::steady_timer stop_timer_;
  boost::asio::steady_timer eof_wait_timer_;
  AgentCallbacks callbacks_;
  protocol::LineFramer stdout_framer_;
  protocol::LineFramer stderr_framer_;
  std::deque<std::string> write_queue_;
  bool writing_ = false;
  bool stdin_closed_ = false;
  bool stdout_eof_ = false;
  bool reaped_ = false;
  bool exit_reported_ = false;
  bool detached_ = false;
  std::optional<ExitStatus> exit_status_;
};

}  // namespace pi_server::agent
