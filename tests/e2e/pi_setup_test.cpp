// The operator's own pi setup, end to end with the real pinned pi: a provider of their own
// (pointing at a local mock, the project's scripted OpenAI-compatible endpoint running in
// this test process) and a default model in their settings.json, found the three ways an
// operator names it; and the demo model when nothing is configured.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "agent/spawner.hpp"
#include "daemon.hpp"
#include "operator_setup.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Every file under `dir` with its size and contents' first bytes: what "unchanged" compares.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string content;
    if (e.is_regular_file()) {
      std::ifstream in(e.path());
      content.assign(std::istreambuf_iterator<char>(in), {});
    }
    out[fs::relative(e.path(), dir).string()] = content;
  }
  return out;
}

class PiSetup : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(PI_SERVER_DEFAULT_AGENT, X_OK), 0) << "the pinned pi is missing: run scripts/setup";
  }

  // The session runs on the operator's provider: its model, its answer, and not one write
  // into the operator's dir (a session's setting change stays in its private copy).
  void expect_operator_model(Daemon& d, const fs::path& operator_dir) {
    auto before = snapshot(operator_dir);
    WsClient c(d.port());
    auto created = open_session(c, "mine");
    EXPECT_EQ(created["data"]["sessionInfo"]["model"], "acme-local/m1") << created.dump();
    auto events = run_prompt(c, "mine", "stream 3", "p1", std::chrono::seconds(60));
    bool from_operator_provider = false;
    for (const auto& e : events)
      if (e["event"].value("type", "") == "message_end" &&
          e["event"]["message"].value("role", "") == "assistant")
        from_operator_provider = e["event"]["message"].value("provider", "") == "acme-local";
    EXPECT_TRUE(from_operator_provider);
    EXPECT_EQ(final_text(events), "w0 w1 w2 ");
    auto set = c.request({{"type", "set_auto_retry"}, {"id", "r"}, {"sessionId", "mine"}, {"enabled", false}});
    EXPECT_EQ(set["success"], true);
    EXPECT_EQ(snapshot(operator_dir), before) << "the daemon or a session wrote into the operator's dir";
    fs::path private_dir = fs::path(d.state_dir()) / "sessions" / "mine" / "agent";
    EXPECT_TRUE(fs::is_symlink(private_dir / "models.json"));
    EXPECT_EQ(fs::read_symlink(private_dir / "models.json"), operator_dir / "models.json");
    EXPECT_TRUE(fs::is_symlink(private_dir / "skills"));
    EXPECT_FALSE(fs::is_symlink(private_dir / "settings.json")) << "a copy, not a link";
    EXPECT_TRUE(d.logs_with_msg("demo_model_in_use").empty());
  }
};

}  // namespace

TEST_F(PiSetup, OperatorDirFromTheDaemonsEnvironment) {
  MockProvider provider;
  TempDir operator_dir;
  write_operator_setup(operator_dir.path(), provider);
  Daemon d({.use_fake_agent = false, .env = {"PI_CODING_AGENT_DIR=" + operator_dir.path()}});
  expect_operator_model(d, operator_dir.path());
}

TEST_F(PiSetup, OperatorDirFromAgentEnvFlag) {
  MockProvider provider;
  TempDir operator_dir;
  write_operator_setup(operator_dir.path(), provider);
  Daemon d({.args = {"--agent-env", "PI_CODING_AGENT_DIR=" + operator_dir.path()}, .use_fake_agent = false});
  expect_operator_model(d, operator_dir.path());
}

TEST_F(PiSetup, OperatorDirIsPisOwnDefaultUnderHome) {
  MockProvider provider;
  TempDir home;
  fs::path dir = fs::path(home.path()) / ".pi" / "agent";
  write_operator_setup(dir, provider);
  Daemon d({.use_fake_agent = false, .env = {"HOME=" + home.path()}});
  expect_operator_model(d, dir);
}

TEST_F(PiSetup, NothingConfiguredGetsTheDemoModelAndSaysSo) {
  Daemon d({.use_fake_agent = false});
  auto warnings = d.logs_with_msg("demo_model_in_use");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0]["level"], "warn");
  WsClient c(d.port());
  auto created = open_session(c, "demo");
  EXPECT_EQ(created["data"]["sessionInfo"]["model"], "pi-server-demo/demo-1");
  auto events = run_prompt(c, "demo", "stream 2", "p", std::chrono::seconds(60));
  EXPECT_EQ(final_text(events), "w0 w1 ");
}

TEST_F(PiSetup, DemoModelFlagOverridesAConfiguredModelAndKeepsTheOperatorsProviders) {
  MockProvider provider;
  TempDir operator_dir;
  write_operator_setup(operator_dir.path(), provider);
  auto before = snapshot(operator_dir.path());
  Daemon d({.args = {"--demo-model"}, .use_fake_agent = false,
            .env = {"PI_CODING_AGENT_DIR=" + operator_dir.path()}});
  WsClient c(d.port());
  auto created = open_session(c, "forced");
  EXPECT_EQ(created["data"]["sessionInfo"]["model"], "pi-server-demo/demo-1");
  // The operator's provider stays reachable through the daemon's copy of models.json.
  auto models = c.request({{"type", "get_available_models"}, {"id", "m"}, {"sessionId", "forced"}});
  bool has_operator_model = false;
  for (const auto& m : models["data"]["models"]) has_operator_model |= m.value("provider", "") == "acme-local";
  EXPECT_TRUE(has_operator_model) << models.dump();
  EXPECT_EQ(snapshot(operator_dir.path()), before);
}

TEST_F(PiSetup, DemoModelFlagsContradictingEachOtherAreAUsageError) {
  TempDir state;
  pi_server::agent::SpawnRequest req;
  req.argv = {daemon_binary(), "--state-dir", state.path(), "--demo-model", "--no-demo-model"};
  auto p = pi_server::agent::spawn_process(req).value();
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  for (int fd : {p.stdin_fd, p.stdout_fd, p.stderr_fd, p.pidfd}) ::close(fd);
}
