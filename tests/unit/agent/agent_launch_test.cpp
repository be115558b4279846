#include "agent/agent_launch.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace pi_server;

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
}  // namespace

TEST(AgentLaunch, SplitsCommandOnSpaces) {
  EXPECT_EQ(agent::split_command("  node  cli.js --x "),
            (std::vector<std::string>{"node", "cli.js", "--x"}));
}

TEST(AgentLaunch, ArgvCarriesModeSessionDirAndModel) {
  AgentOptions o;
  o.command = {"pi"};
  agent::SessionLaunch s;
  s.model = "anthropic/claude-x";
  s.thinking_level = "high";
  s.session_dir = "/state/sessions/a";
  auto req = agent::build_spawn_request(o, s, nullptr);
  EXPECT_EQ(req.argv, (std::vector<std::string>{"pi", "--mode", "rpc", "--session-dir",
                                                "/state/sessions/a", "--continue", "--provider",
                                                "anthropic", "--model", "claude-x", "--thinking",
                                                "high"}));
}

TEST(AgentLaunch, EnvironmentIsAllowListedPlusExtras) {
  std::string e1 = "PATH=/bin", e2 = "SECRET_TOKEN=x", e3 = "LC_ALL=C", e4 = "OPENAI_API_KEY=k",
              e5 = "PASS_ME=yes", e6 = "PI_OFFLINE=0";
  char* env[] = {e1.data(), e2.data(), e3.data(), e4.data(), e5.data(), e6.data(), nullptr};
  AgentOptions o;
  o.command = {"pi"};
  o.extra_env = {"PASS_ME", "EXTRA=1", "PI_TELEMETRY=1"};
  agent::SessionLaunch s;
  s.agent_dir = "/a";
  auto req = agent::build_spawn_request(o, s, env);
  EXPECT_TRUE(has(req.env, "PATH=/bin"));
  EXPECT_TRUE(has(req.env, "LC_ALL=C"));
  EXPECT_TRUE(has(req.env, "OPENAI_API_KEY=k"));
  EXPECT_FALSE(has(req.env, "SECRET_TOKEN=x"));
  EXPECT_TRUE(has(req.env, "PASS_ME=yes"));
  EXPECT_TRUE(has(req.env, "EXTRA=1"));
  EXPECT_TRUE(has(req.env, "PI_CODING_AGENT_DIR=/a"));
  // The daemon's offline defaults win over the inherited value; --agent-env wins over both.
  EXPECT_TRUE(has(req.env, "PI_OFFLINE=1"));
  EXPECT_TRUE(has(req.env, "PI_TELEMETRY=1"));
}

TEST(AgentLaunch, CompileCacheAndNodeOptionsReachTheAgent) {
  std::string e1 = "NODE_OPTIONS=--enable-source-maps";
  char* env[] = {e1.data(), nullptr};
  AgentOptions o;
  o.command = {"pi"};
  o.compile_cache_dir = "/state/node-compile-cache";
  o.node_options = "--max-semi-space-size=1 --v8-pool-size=1";
  auto req = agent::build_spawn_request(o, agent::SessionLaunch{}, env);
  EXPECT_TRUE(has(req.env, "NODE_COMPILE_CACHE=/state/node-compile-cache"));
  EXPECT_TRUE(has(req.env, "NODE_OPTIONS=--enable-source-maps --max-semi-space-size=1 --v8-pool-size=1"));
  // An operator's --agent-env wins.
  o.extra_env = {"NODE_COMPILE_CACHE=/elsewhere"};
  req = agent::build_spawn_request(o, agent::SessionLaunch{}, nullptr);
  EXPECT_TRUE(has(req.env, "NODE_COMPILE_CACHE=/elsewhere"));
  EXPECT_TRUE(has(req.env, "NODE_OPTIONS=--max-semi-space-size=1 --v8-pool-size=1"));
}
