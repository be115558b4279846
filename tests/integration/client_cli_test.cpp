// pi-server-client against a running daemon with the fake agent (DESIGN §11 "Client CLI",
// docs/clients.md): send, chat, sessions and the exit codes scripts rely on.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "agent/spawner.hpp"
#include "client_run.hpp"
#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

namespace pi_server::testing {
namespace {

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
