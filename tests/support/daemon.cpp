#include "daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "agent/spawner.hpp"

extern char** environ;

namespace pi_server::testing {

std::string daemon_binary() { return PI_SERVER_TEST_DAEMON; }

CommandOutput run_command(const std::string& command) {
  CommandOutput result{-1, {}};
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return result;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) result.output.append(buf, n);
  int status = ::pclose(p);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

std::optional<nlohmann::json> connection_opened_as(const Daemon& d, const std::string& principal) {
  for (int i = 0; i < 50; ++i) {
    for (const auto& line : d.logs_with_msg("connection_opened"))
      if (line.value("principal", "") == principal) return line;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}
std::string fake_agent_binary() { return PI_SERVER_TEST_FAKE_AGENT; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/pi-server-test-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::pair<int, std::string> run_daemon_to_exit(const std::vector<std::string>& args) {
  TempDir state;
  agent::SpawnRequest req;
  req.argv = {daemon_binary(), "--state-dir", state.path()};
  req.argv.insert(req.argv.end(), args.begin(), args.end());
  auto spawned = agent::spawn_process(req);
  if (!spawned) throw std::runtime_error(spawned.error());
  auto p = spawned.value();
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(p.stderr_fd, buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  siginfo_t info{};
  ::waitid(P_PID, static_cast<id_t>(p.pid), &info, WEXITED);
  for (int fd : {p.pidfd, p.stdin_fd, p.stdout_fd, p.stderr_fd}) ::close(fd);
  return {info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status, err};
}

bool process_exists(pid_t pid) {
  // A zombie still answers kill(0): an unreaped child counts as a leak here.
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

Daemon::Daemon(Options options)
    : state_dir_(options.state_dir.empty() ? state_.path() : options.state_dir) {
  agent::SpawnRequest req;
  req.argv = {options.binary.empty() ? daemon_binary() : options.binary, "--state-dir", state_dir_};
  if (options.run_in_state_dir) req.cwd = state_dir_;
  if (!options.log_level.empty()) req.argv.insert(req.argv.end(), {"--log-level", options.log_level});
  if (options.stdio_only) {
    req.argv.insert(req.argv.end(), {"--stdio", "--no-listen"});
  } else {
    req.argv.insert(req.argv.end(), {"--listen", options.listen});
  }
  if (options.use_fake_agent) req.argv.insert(req.argv.end(), {"--agent-command", fake_agent_binary()});
  req.argv.insert(req.argv.end(), options.args.begin(), options.args.end());
  // Hermetic by default: the developer's own pi setup (~/.pi/agent, PI_CODING_AGENT_DIR,
  // provider keys) must not decide which model a test's sessions get. HOME is a fresh
  // directory; a test that wants a pi setup passes it in options.env (later entries win).
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(entry.substr(0, eq));
    if (name == "PI_CODING_AGENT_DIR" || name.ends_with("_API_KEY") || name.ends_with("_TOKEN"))
      continue;
    env[name] = std::string(entry.substr(eq + 1));
  }
  env["HOME"] = home_.path();
  for (const auto& entry : options.env) {
    auto eq = entry.find('=');
    env[entry.substr(0, eq)] = eq == std::string::npos ? "" : entry.substr(eq + 1);
  }
  for (const auto& [name, value] : env) req.env.push_back(name + "=" + value);
  auto spawned = agent::spawn_process(req);
  if (!spawned) throw std::runtime_error("cannot start daemon: " + spawned.error());
  auto p = spawned.value();
  pid_ = p.pid;
  pidfd_ = p.pidfd;
  stdin_fd_ = p.stdin_fd;
  stdout_fd_ = p.stdout_fd;
  stderr_fd_ = p.stderr_fd;
  stderr_thread_ = std::thread([this] { collect_stderr(); });
  const char* ready_msg = options.stdio_only ? "serving_stdio" : "listening";
  auto line = wait_log(ready_msg, std::chrono::seconds(20));
  if (!line) {
    // The destructor does not run for a constructor that throws: stop the process and the
    // stderr thread here (a joinable std::thread would terminate the test binary).
    release();
    std::string last;
    for (const auto& logged : logs()) last = logged.dump();
    throw std::runtime_error("daemon did not become ready; last log line: " + last);
  }
  if (!options.stdio_only) {
    std::string address = (*line)["address"];
    port_ = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  }
}

Daemon::~Daemon() { release(); }

namespace {

// The daemon's child processes (agents, pooled ones included), from /proc.
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t child; in >> child;) out.push_back(child);
  }
  return out;
}

}  // namespace

void Daemon::release() {
  if (released_) return;
  released_ = true;
  if (!exit_code_) {
    // Its agents first (each leads its own process group): killed with the daemon alone they
    // would live on until they read EOF, and a pi still starting up would write its agent dir
    // back into the state dir this test is about to remove.
    for (pid_t child : children_of(pid_)) ::kill(-child, SIGKILL);
    ::kill(pid_, SIGKILL);
    wait_exit(std::chrono::seconds(10));
  }
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (stderr_thread_.joinable()) stderr_thread_.join();
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
  if (pidfd_ >= 0) ::close(pidfd_);
}

void Daemon::collect_stderr() {
  std::string pending;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (std::getenv("PI_SERVER_TEST_ECHO_LOGS")) std::fprintf(stderr, "[daemon] %s\n", line.c_str());
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) j = nlohmann::json{{"msg", "raw"}, {"line", line}};
      std::lock_guard lock(mu_);
      logs_.push_back(std::move(j));
      cv_.notify_all();
    }
  }
}

std::vector<nlohmann::json> Daemon::logs() const {
  std::lock_guard lock(mu_);
  return logs_;
}

std::optional<nlohmann::json> Daemon::wait_log(const std::string& msg,
                                               std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<nlohmann::json> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& j : logs_)
      if (j.is_object() && j.value("msg", "") == msg) {
        found = j;
        return true;
      }
    return false;
  });
  return found;
}

void Daemon::write_stdin(const std::string& line) { write_stdin_raw(line + "\n"); }

void Daemon::write_stdin_raw(const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(stdin_fd_, data.data() + off, data.size() - off);
    if (n <= 0) throw std::runtime_error("write to daemon stdin failed");
    off += static_cast<std::size_t>(n);
  }
}

void Daemon::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

std::optional<std::string> Daemon::read_stdout_line(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto nl = stdout_buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, nl);
      stdout_buffer_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{stdout_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    char buf[65536];
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    stdout_buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<int> Daemon::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  pollfd pfd{pidfd_, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED) != 0) return std::nullopt;
  exit_code_ = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
  return exit_code_;
}

int Daemon::signal_and_wait(int sig, std::chrono::milliseconds timeout) {
  ::kill(pid_, sig);
  auto code = wait_exit(timeout);
  if (!code) throw std::runtime_error("daemon did not exit in time");
  return *code;
}

}  // namespace pi_server::testing
