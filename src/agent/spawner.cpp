#include "agent/spawner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace pi_server::agent {
namespace {

// glibc 2.36 ships pidfd_open, but its <sys/pidfd.h> lacks C++ guards; the raw syscall
// avoids that header altogether.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

struct Pipe {
  int read = -1;
  int write = -1;
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::error_code last_error() { return {errno, std::generic_category()}; }

Status failure(std::error_code ec) { return Status::error(ec.message()); }

}  // namespace

Result<SpawnedProcess> spawn_process(const SpawnRequest& request) {
  if (request.argv.empty()) return failure(std::make_error_code(std::errc::invalid_argument));

  std::array<Pipe, 3> pipes;  // stdin, stdout, stderr
  auto close_all = [&] {
    for (auto& p : pipes) {
      close_fd(p.read);
      close_fd(p.write);
    }
  };
  for (auto& p : pipes) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      auto ec = last_error();
      close_all();
      return failure(ec);
    }
    p.read = fds[0];
    p.write = fds[1];
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears CLOEXEC on 0/1/2 only; closefrom(3) catches descriptors some library
  // opened without CLOEXEC.
  posix_spawn_file_actions_adddup2(&actions, pipes[0].read, 0);
  posix_spawn_file_actions_adddup2(&actions, pipes[1].write, 1);
  posix_spawn_file_actions_adddup2(&actions, pipes[2].write, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, request.cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  // The daemon ignores SIGPIPE and handles SIGTERM/SIGINT/SIGHUP; an ignored signal would
  // stay ignored across exec, so reset them all to default in the child.
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD})
    sigaddset(&defaults, sig);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setpgroup(&attr, 0);  // own process group: we signal -pgid
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETPGROUP);

  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : request.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);

  // The child's ends belong to the child now.
  close_fd(pipes[0].read);
  close_fd(pipes[1].write);
  close_fd(pipes[2].write);
  if (rc != 0) {
    close_all();
    return failure(std::error_code(rc, std::generic_category()));
  }

  SpawnedProcess out;
  out.pid = pid;
  out.pidfd = open_pidfd(pid);
  if (out.pidfd < 0) {
    // Cannot watch it: do not leave it running unsupervised.
    auto ec = last_error();
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    close_all();
    return failure(ec);
  }
  out.stdin_fd = pipes[0].write;
  out.stdout_fd = pipes[1].read;
  out.stderr_fd = pipes[2].read;
  return out;
}

}  // namespace pi_server::agent
