#include "agent/agent_process.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iterator>

#include <boost/asio/write.hpp>

namespace pi_server::agent {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::size_t kReadChunk = 256 * 1024;
// After the process is reaped, how long to wait for its stdout to reach EOF (a grandchild
// that inherited the pipe could hold it open forever).
constexpr std::chrono::milliseconds kStdoutDrainWait{500};
}  // namespace

class AgentProcess::StdoutSink : public protocol::LineFramer::Sink {
 public:
  explicit StdoutSink(AgentProcess& p) : p_(p) {}
  void on_line(std::string_view line) override {
    if (!p_.detached_ && p_.callbacks_.on_line) p_.callbacks_.on_line(line);
  }
  void on_oversize(std::size_t bytes) override {
    if (!p_.detached_ && p_.callbacks_.on_oversize_line) p_.callbacks_.on_oversize_line(bytes);
  }

 private:
  AgentProcess& p_;
};

class AgentProcess::StderrSink : public protocol::LineFramer::Sink {
 public:
  explicit StderrSink(AgentProcess& p) : p_(p) {}
  void on_line(std::string_view line) override {
    if (!p_.detached_ && p_.callbacks_.on_stderr_line) p_.callbacks_.on_stderr_line(line);
  }
  void on_oversize(std::size_t bytes) override {
    if (!p_.detached_ && p_.callbacks_.on_stderr_line)
      p_.callbacks_.on_stderr_line("[over-long stderr line dropped]");
  }

 private:
  AgentProcess& p_;
};

std::shared_ptr<AgentProcess> AgentProcess::adopt(asio::io_context& io, SpawnedProcess process,
                                                  AgentCallbacks callbacks, AgentLimits limits) {
  auto p = std::make_shared<AgentProcess>(io, process, std::move(callbacks), limits);
  p->start();
  return p;
}

AgentProcess::AgentProcess(asio::io_context& io, SpawnedProcess process, AgentCallbacks callbacks,
                           AgentLimits limits)
    : io_(io),
      pid_(process.pid),
      stdin_(io, process.stdin_fd),
      stdout_(io, process.stdout_fd),
      stderr_(io, process.stderr_fd),
      pidfd_(io, process.pidfd),
      stop_timer_(io),
      eof_wait_timer_(io),
      callbacks_(std::move(callbacks)),
      stdout_framer_(limits.max_line_bytes),
      stderr_framer_(limits.max_stderr_line_bytes) {}

AgentProcess::~AgentProcess() {
  // Last line of defence against a leaked agent: the owner stops agents gracefully, but
  // if this object dies with the process still running, kill the whole group and reap it.
  if (!reaped_) {
    ::kill(-pid_, SIGKILL);
    siginfo_t info{};
    ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED);
  }
}

void AgentProcess::start() {
  read_stdout();
  read_stderr();
  watch_exit();
}

void AgentProcess::read_stdout() {
  auto buf = stdout_framer_.prepare(kReadChunk);
  stdout_.async_read_some(
      asio::buffer(buf.data(), buf.size()),
      [self = shared_from_this()](error_code ec, std::size_t n) {
        if (ec) {
          self->stdout_eof_ = true;
          self->maybe_report_exit();
          return;
        }
        StdoutSink sink(*self);
        self->stdout_framer_.commit(n, sink);
        self->read_stdout();
      });
}

void AgentProcess::read_stderr() {
  auto buf = stderr_framer_.prepare(16 * 1024);
  stderr_.async_read_some(asio::buffer(buf.data(), buf.size()),
                          [self = shared_from_this()](error_code ec, std::size_t n) {
                            if (ec) return;
                            StderrSink sink(*self);
                            self->stderr_framer_.commit(n, sink);
                            self->read_stderr();
                          });
}

void AgentProcess::watch_exit() {
  pidfd_.async_wait(asio::posix::stream_descriptor::wait_read,
                    [self = shared_from_this()](error_code ec) {
                      if (ec == asio::error::operation_aborted) return;
                      siginfo_t info{};
                      // P_PIDFD (3): reap exactly this child through its pidfd.
                      if (::waitid(static_cast<idtype_t>(3), self->pidfd_.native_handle(), &info,
                                   WEXITED) != 0) {
                        // Fall back to the pid (kernel without P_PIDFD support).
                        ::waitid(P_PID, static_cast<id_t>(self->pid_), &info, WEXITED);
                      }
                      self->reaped_ = true;
                      ExitStatus status;
                      if (info.si_code == CLD_EXITED) {
                        status.exit_code = info.si_status;
                      } else {
                        status.signal = info.si_status;
                      }
                      self->exit_status_ = status;
                      self->stop_timer_.cancel();
                      // Anything left in its group (tool subprocesses) goes with it.
                      ::kill(-self->pid_, SIGKILL);
                      error_code ignored;
                      self->stdin_.close(ignored);
                      self->stdin_closed_ = true;
                      self->drop_queued_writes();
                      self->eof_wait_timer_.expires_after(kStdoutDrainWait);
                      self->eof_wait_timer_.async_wait([self](error_code ec) {
                        if (ec) return;
                        self->stdout_eof_ = true;
                        error_code ignored2;
                        self->stdout_.close(ignored2);
                        self->maybe_report_exit();
                      });
                      self->maybe_report_exit();
                    });
}

void AgentProcess::maybe_report_exit() {
  if (exit_reported_ || !reaped_ || !stdout_eof_) return;
  exit_reported_ = true;
  eof_wait_timer_.cancel();
  error_code ignored;
  stderr_.close(ignored);
  stdout_.close(ignored);
  pidfd_.close(ignored);
  if (!detached_ && callbacks_.on_exit) {
    auto cb = std::move(callbacks_.on_exit);
    cb(*exit_status_);
  }
}

void AgentProcess::write_line(std::string line) {
  if (stdin_closed_) return;
  line.push_back('\n');
  write_queue_.push_back(std::move(line));
  if (!writing_) write_next();
}

void AgentProcess::write_next() {
  if (write_queue_.empty() || stdin_closed_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  asio::async_write(stdin_, asio::buffer(write_queue_.front()),
                    [self = shared_from_this()](error_code ec, std::size_t) {
                      // EPIPE: the agent closed stdin or died (the exit watcher reports it).
                      // Stdin closed by us meanwhile (stop, exit): the write may still have
                      // completed, but nothing more goes out.
                      if (ec || self->stdin_closed_) {
                        self->writing_ = false;
                        self->write_queue_.clear();
                        return;
                      }
                      self->write_queue_.pop_front();
                      self->write_next();
                    });
}

void AgentProcess::drop_queued_writes() {
  if (writing_ && !write_queue_.empty())
    write_queue_.erase(std::next(write_queue_.begin()), write_queue_.end());
  else
    write_queue_.clear();
}

void AgentProcess::signal_group(int sig) {
  if (!reaped_) ::kill(-pid_, sig);
}

void AgentProcess::stop(std::chrono::milliseconds eof_grace, std::chrono::milliseconds term_grace) {
  if (reaped_) return;
  // Closing stdin while a write is in flight would abort it; pi exits on EOF either way.
  error_code ignored;
  stdin_closed_ = true;
  drop_queued_writes();
  stdin_.close(ignored);
  stop_timer_.expires_after(eof_grace);
  stop_timer_.async_wait([self = shared_from_this(), term_grace](error_code ec) {
    if (ec) return;
    self->signal_group(SIGTERM);
    self->stop_timer_.expires_after(term_grace);
    self->stop_timer_.async_wait([self](error_code ec2) {
      if (ec2) return;
      self->signal_group(SIGKILL);
    });
  });
}

void AgentProcess::kill_now() { signal_group(SIGKILL); }

// Only a flag: detach() may be called from inside one of the callbacks, which must not be
// destroyed while it runs.
void AgentProcess::detach() { detached_ = true; }

}  // namespace pi_server::agent
