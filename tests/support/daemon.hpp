#pragma once
// Starts the real pi-server binary for a test, the way an operator would: its own state
// dir, --listen 127.0.0.1:0 and the port read from the "listening" log line (DESIGN §8).
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pi_server::testing {

// Paths baked in by tests/CMakeLists.txt.
std::string daemon_binary();
std::string fake_agent_binary();

// Runs `command` with /bin/sh: its exit status (-1 if it did not exit normally) and its
// standard output (append " 2>&1" to the command for standard error as well).
struct CommandOutput {
  int exit_code;
  std::string output;
};
CommandOutput run_command(const std::string& command);

// A fresh empty directory under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Daemon {
 public:
  struct Options {
    std::vector<std::string> args;   // extra flags
    std::string listen = "127.0.0.1:0";  // --listen (ready when its "listening" line comes)
    bool stdio_only = false;          // --stdio --no-listen (no "listening" line)
    bool use_fake_agent = true;       // --agent-command <fake-agent>
    std::vector<std::string> env;     // extra NAME=VALUE for the daemon
    std::string binary;               // another pi-server binary (benchmarks); empty: this build's
    std::string log_level = "debug";  // --log-level; empty: none on the command line
    std::string state_dir;            // an existing state dir (a restart); empty: a fresh one
    bool run_in_state_dir = false;    // the daemon's working directory is its state dir (a service)
  };
  explicit Daemon(Options options);
  Daemon() : Daemon(Options{}) {}
  ~Daemon();

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& state_dir() const { return state_dir_; }
  // The daemon's HOME: empty unless the test puts a pi setup (.pi/agent) there. Options.env
  // may name another HOME.
  const std::string& home_dir() const { return home_.path(); }

  // stdio transport (stdio_only): write one line, read one line (nullopt on timeout/EOF).
  void write_stdin(const std::string& line);
  // Writes exactly these bytes (no newline added).
  void write_stdin_raw(const std::string& bytes);
  void close_stdin();
  std::optional<std::string> read_stdout_line(std::chrono::milliseconds timeout);

  // Sends `sig` and waits for exit. Returns the exit code (or 128+signal).
  int signal_and_wait(int sig, std::chrono::milliseconds timeout);
  // Waits for exit without signalling.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  // Parsed JSON log lines seen so far on stderr.
  std::vector<nlohmann::json> logs() const;
  // Those of them with this msg.
  std::vector<nlohmann::json> logs_with_msg(const std::string& msg) const {
    std::vector<nlohmann::json> out;
    for (auto& line : logs())
      if (line.value("msg", "") == msg) out.push_back(line);
    return out;
  }
  // Waits until a log line with this msg appears.
  std::optional<nlohmann::json> wait_log(const std::string& msg, std::chrono::milliseconds timeout);

 private:
  void collect_stderr();
  // Kills the process unless it has exited, closes its pipes, joins the stderr reader; once.
  void release();
  bool released_ = false;

  TempDir state_;
  std::string state_dir_;  // state_'s path, or Options::state_dir
  TempDir home_;  // the daemon's HOME (see the constructor)
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::uint16_t port_ = 0;
  std::optional<int> exit_code_;
  std::string stdout_buffer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<nlohmann::json> logs_;
  std::thread stderr_thread_;
};

// Runs the daemon binary with these flags (and a fresh --state-dir) until it exits: its
// exit code and everything it wrote to stderr. For flags that must make it refuse to start.
std::pair<int, std::string> run_daemon_to_exit(const std::vector<std::string>& args);

// True while a process with this pid exists (zombies count as gone only once reaped).
bool process_exists(pid_t pid);

// The connection_opened log line (debug level) of a connection acting for `principal`,
// waited for up to a second.
std::optional<nlohmann::json> connection_opened_as(const Daemon& d, const std::string& principal);

}  // namespace pi_server::testing
