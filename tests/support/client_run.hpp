#pragma once
// Runs build/release/pi-server-client as a child process, as a script would: arguments,
// stdin from a string, stdout and stderr captured, the exit code.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/spawner.hpp"

namespace pi_server::testing {

struct ClientRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs pi-server-client with these arguments and this stdin (pipes: neither end is a
// terminal), and waits for it (at most 60 s).
inline ClientRun run_client(std::vector<std::string> args, const std::string& input = "",
                     std::vector<std::string> env = {}) {
  agent::SpawnRequest req;
  req.argv = {PI_SERVER_TEST_CLIENT};
  req.argv.insert(req.argv.end(), args.begin(), args.end());
  req.env = {"PATH=/usr/bin:/bin"};
  req.env.insert(req.env.end(), env.begin(), env.end());
  auto spawned = agent::spawn_process(req);
  if (!spawned) throw std::runtime_error(spawned.error());
  auto p = spawned.value();
  if (!input.empty() && ::write(p.stdin_fd, input.data(), input.size()) != static_cast<ssize_t>(input.size()))
    throw std::runtime_error("short write to the client's stdin");
  ::close(p.stdin_fd);
  ClientRun run;
  pollfd fds[2] = {{p.stdout_fd, POLLIN, 0}, {p.stderr_fd, POLLIN, 0}};
  int open = 2;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (open > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 1000) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      (i == 0 ? run.out : run.err).append(buf, static_cast<std::size_t>(n));
    }
  }
  if (open > 0) ::kill(p.pid, SIGKILL);
  siginfo_t info{};
  ::waitid(P_PID, static_cast<id_t>(p.pid), &info, WEXITED);
  run.exit_code = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
  for (int fd : {p.pidfd, p.stdout_fd, p.stderr_fd}) ::close(fd);
  return run;
}

}  // namespace pi_server::testing
