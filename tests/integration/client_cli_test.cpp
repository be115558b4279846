// pi-server-client against a running daemon with the fake agent (DESIGN §11 "Client CLI",
// docs/clients.md): send, chat, sessions and the exit codes scripts rely on.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "agent/spawner.hpp"
#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

namespace pi_server::testing {
namespace {

struct ClientRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs pi-server-client with these arguments and this stdin (pipes: neither end is a
// terminal), and waits for it (at most 60 s).
ClientRun run_client(std::vector<std::string> args, const std::string& input = "",
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

std::string url(const Daemon& d) { return "ws://127.0.0.1:" + std::to_string(d.port()); }

std::vector<nlohmann::json> lines_of(const std::string& out) {
  std::vector<nlohmann::json> frames;
  std::size_t start = 0;
  for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
    frames.push_back(nlohmann::json::parse(out.substr(start, nl - start)));
  EXPECT_EQ(start, out.size()) << "every frame ends with a newline";
  return frames;
}

TEST(ClientCli, SendWritesEveryFrameAndEndsOnceEveryCommandIsAnswered) {
  Daemon d;
  auto run = run_client({"--url", url(d), "send"},
                        "{\"type\":\"create_session\",\"id\":\"c\",\"sessionId\":\"s\"}\n"
                        "{\"type\":\"get_state\",\"id\":\"g\",\"sessionId\":\"s\"}\n"
                        "\n"
                        "{\"type\":\"list_sessions\",\"id\":\"l\"}\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto frames = lines_of(run.out);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0]["type"], "server_ready");
  std::set<std::string> answered;
  for (const auto& f : frames)
    if (f["type"] == "response") {
      answered.insert(f["id"].get<std::string>());
      EXPECT_EQ(f["success"], true) << f.dump();
    }
  EXPECT_EQ(answered, (std::set<std::string>{"c", "g", "l"}));
}

TEST(ClientCli, SendExitsOneWhenTheConnectionFails) {
  Daemon d;
  std::uint16_t port = d.port();
  d.signal_and_wait(SIGTERM, std::chrono::seconds(15));
  auto run = run_client({"--url", "ws://127.0.0.1:" + std::to_string(port), "send"}, "{}\n");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("cannot connect"), std::string::npos) << run.err;
}

TEST(ClientCli, ChatStreamsTheAnswerAndAttachesLater) {
  Daemon d;
  auto run = run_client({"--url", url(d), "chat", "--session", "c1", "stream", "3"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "w0 w1 w2 \n");
  EXPECT_EQ(run.out.find('\r'), std::string::npos) << "no spinner when stdout is not a terminal";

  // The same session again: attached, not created.
  run = run_client({"--url", url(d), "chat", "--session", "c1", "stream 2"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "w0 w1 \n");
  EXPECT_EQ(d.logs_with_msg("session_created").size(), 1u);

  // --new for a running session fails with the command-failed code.
  run = run_client({"--url", url(d), "chat", "--new", "--session", "c1", "stream 1"});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("create_session failed"), std::string::npos) << run.err;
}

TEST(ClientCli, ChatShowsToolCallsOnALineEachAndCancelsDialogsWithoutATerminal) {
  Daemon d;
  auto run = run_client({"--url", url(d), "chat", "tool"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("[tool] bash {\"command\":\"echo hi\"}\n"), std::string::npos) << run.out;

  run = run_client({"--url", url(d), "chat", "ui"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("[dialog] Pick one (cancelled: stdin is not a terminal)"), std::string::npos) << run.out;
}

TEST(ClientCli, AFailedRunExitsThree) {
  Daemon d;
  auto run = run_client({"--url", url(d), "chat", "error 500"});
  EXPECT_EQ(run.exit_code, 3) << run.out << run.err;
  EXPECT_FALSE(run.err.empty());
}

TEST(ClientCli, SessionsPrintsATable) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "listed-session");
  auto run = run_client({"--url", url(d), "sessions"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out.rfind("SESSION", 0), 0u) << run.out;
  EXPECT_NE(run.out.find("listed-session"), std::string::npos) << run.out;
}

TEST(ClientCli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_client({"--url", "http://127.0.0.1:1", "sessions"}).exit_code, 2);
  EXPECT_EQ(run_client({"--token-file", "/nonexistent/token", "sessions"}).exit_code, 2);
  EXPECT_EQ(run_client({"--token", "a", "--token-file", "/etc/hostname", "sessions"}).exit_code, 2);
  EXPECT_EQ(run_client({"chat"}).exit_code, 2);
  EXPECT_EQ(run_client({}).exit_code, 2);
}

}  // namespace
}  // namespace pi_server::testing
