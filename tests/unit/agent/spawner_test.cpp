#include "agent/spawner.hpp"

#include <boost/asio/io_context.hpp>
#include <chrono>

#include "agent/agent_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <system_error>

using namespace pi_server::agent;

namespace {
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}
}  // namespace

TEST(Spawner, ChildGetsOnlyThreeFdsItsOwnGroupAndCleanSignals) {
  // A descriptor without CLOEXEC in the parent must not reach the child.
  int leaky[2];
  ASSERT_EQ(::pipe(leaky), 0);
  // An ignored SIGPIPE in the parent (as in the daemon) must not stay ignored in the child.
  auto old_pipe = ::signal(SIGPIPE, SIG_IGN);
  SpawnRequest req;
  req.argv = {"/bin/sh", "-c",
              "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; echo \" $(cut -d' ' -f5 /proc/$$/stat)\"; "
              "grep SigIgn /proc/self/status; pwd"};
  req.env = {"PATH=/usr/bin:/bin"};
  req.cwd = "/tmp";
  auto r = spawn_process(req);
  ASSERT_TRUE(r.is_ok()) << r.error();
  auto p = r.value();
  ::close(p.stdin_fd);
  std::string out = read_all(p.stdout_fd);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(p.pid), &info, WEXITED), 0);
  EXPECT_EQ(info.si_status, 0);
  // ls itself opens one fd for the directory listing (3); nothing above it.
  EXPECT_EQ(out.substr(0, out.find('\n')), "0 1 2 3 ");
  EXPECT_NE(out.find(" " + std::to_string(p.pid) + "\n"), std::string::npos) << out;
  ::signal(SIGPIPE, old_pipe);
  auto sig_ign = out.find("SigIgn:\t");
  ASSERT_NE(sig_ign, std::string::npos);
  unsigned long long ignored = std::stoull(out.substr(sig_ign + 8, 16), nullptr, 16);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP})
    EXPECT_EQ(ignored & (1ull << (sig - 1)), 0u) << "signal " << sig << " ignored in child: " << out;
  EXPECT_NE(out.find("/tmp\n"), std::string::npos);
  for (int fd : {p.pidfd, p.stdout_fd, p.stderr_fd, leaky[0], leaky[1]}) ::close(fd);
}

TEST(Spawner, ExecFailureComesBackAsAValue) {
  SpawnRequest req;
  req.argv = {"/nonexistent/agent"};
  auto r = spawn_process(req);
  ASSERT_FALSE(r.is_ok());
  // The errno's own text (what std::error_code says), for the client's error message.
  EXPECT_EQ(r.error(), std::make_error_code(std::errc::no_such_file_or_directory).message());
  EXPECT_FALSE(r.status().code().has_value());
}

// Regression (found as "double free" at shutdown, when the warm pool had just written to a
// starting agent): stop() right after write_line. The write completes at once (its handler is
// queued with success) and stop() drops the queue before that handler runs; the handler must
// not pop the now empty queue, and the line being written must stay alive while it is written.
TEST(AgentProcess, StopRightAfterAWriteIsSafe) {
  for (std::size_t size : {std::size_t{16}, std::size_t{1} << 20}) {
    SCOPED_TRACE(size);
    boost::asio::io_context io;
    SpawnRequest req;
    req.argv = {"/bin/cat"};
    req.env = {"PATH=/usr/bin:/bin"};
    auto r = spawn_process(req);
    ASSERT_TRUE(r.is_ok()) << r.error();
    bool exited = false;
    AgentCallbacks callbacks;
    callbacks.on_exit = [&](ExitStatus) { exited = true; };
    auto agent = AgentProcess::adopt(io, r.value(), std::move(callbacks), AgentLimits{});
    agent->write_line(std::string(size, 'x'));
    agent->write_line("second");
    agent->stop(std::chrono::milliseconds(200), std::chrono::milliseconds(200));
    io.run_for(std::chrono::seconds(5));
    EXPECT_TRUE(exited);
  }
}
