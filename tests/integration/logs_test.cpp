// What the logs may carry (STYLE §9, docs/operations.md "Logs"): prompt text, agent output and
// secrets only at debug; the command id on every line about a command; text lines when
// stderr is a terminal, JSON otherwise.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

namespace pi_server::testing {
namespace {

constexpr const char* kSecret = "sk-marker-secret-0d5e";
constexpr const char* kPromptMarker = "prompt-marker-91ab";

// A prompt whose agent writes two stderr lines, under a daemon with a secret in --agent-env.
std::unique_ptr<Daemon> run_traffic(const std::string& level) {
  auto d = std::make_unique<Daemon>(Daemon::Options{
      .args = {"--agent-env", std::string("PI_TEST_SECRET=") + kSecret}, .log_level = level});
  WsClient c(d->port());
  open_session(c, "s");
  run_prompt(c, "s", std::string("stderr 2 ") + kPromptMarker, "p1");
  EXPECT_TRUE(d->wait_log("agent_stderr", std::chrono::seconds(5)));
  c.request({{"type", "delete_session"}, {"id", "del"}, {"sessionId", "s"}});
  return d;
}

bool above_debug(const nlohmann::json& line) {
  auto level = line.value("level", "");
  return level != "debug" && level != "trace";
}

TEST(Logs, AtInfoNoLineCarriesPromptTextAgentOutputOrSecrets) {
  auto d = run_traffic("info");
  for (const auto& line : d->logs()) {
    std::string text = line.dump();
    EXPECT_EQ(text.find(kPromptMarker), std::string::npos) << text;
    EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
    EXPECT_EQ(text.find("fake stderr line"), std::string::npos) << text;
  }
  auto stderr_lines = d->logs_with_msg("agent_stderr");
  ASSERT_FALSE(stderr_lines.empty());
  EXPECT_GT(stderr_lines[0].value("bytes", 0), 0);
}

TEST(Logs, AtDebugTheTextIsThereOnlyInDebugLinesAndEveryCommandLineHasItsId) {
  auto d = run_traffic("debug");
  EXPECT_FALSE(d->logs_with_msg("agent_stderr_text").empty());
  bool finished_p1 = false;
  for (const auto& line : d->logs()) {
    std::string text = line.dump();
    if (above_debug(line)) {
      EXPECT_EQ(text.find(kPromptMarker), std::string::npos) << text;
      EXPECT_EQ(text.find("fake stderr line"), std::string::npos) << text;
    }
    EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
    // A line about a command names it by type and id.
    if (line.contains("command")) {
      EXPECT_TRUE(line.contains("cmd")) << text;
    }
    if (line.value("msg", "") == "command_finished" && line.value("cmd", "") == "p1") {
      finished_p1 = true;
      EXPECT_EQ(line["command"], "prompt");
      EXPECT_EQ(line["session"], "s");
      EXPECT_TRUE(line.contains("conn"));
    }
  }
  EXPECT_TRUE(finished_p1);
  auto created = d->logs_with_msg("session_created");
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0]["cmd"], "create-s");
  auto deleted = d->logs_with_msg("session_deleted");
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0]["cmd"], "del");
}

// Runs the daemon in stdio-only mode with stderr on a terminal (a pty) and stdin at EOF, and
// returns what it wrote there.
std::string stderr_on_a_terminal(const std::vector<std::string>& extra) {
  TempDir state;
  int master = -1, slave = -1;
  EXPECT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  std::vector<std::string> args = {daemon_binary(), "--stdio", "--no-listen", "--state-dir", state.path(),
                                   "--agent-command", fake_agent_binary()};
  args.insert(args.end(), extra.begin(), extra.end());
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(slave, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(slave);
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 20000) <= 0) break;
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the daemon has exited
    out.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  return out;
}

TEST(Logs, TextOnATerminalUnlessJsonIsAskedFor) {
  std::string text = stderr_on_a_terminal({});
  auto at = text.find(" info serving_stdio ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_EQ(text.find("{\"ts\""), std::string::npos) << text;

  std::string json = stderr_on_a_terminal({"--log-format", "json"});
  EXPECT_NE(json.find("\"msg\":\"serving_stdio\""), std::string::npos) << json;
}

}  // namespace
}  // namespace pi_server::testing
