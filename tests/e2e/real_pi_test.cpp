// End-to-end: the daemon drives the real pinned pi (installed by scripts/setup) against the
// daemon's own offline demo model (a scripted OpenAI-compatible endpoint on loopback).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "client_run.hpp"
#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

class RealPi : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(PI_SERVER_DEFAULT_AGENT, X_OK), 0)
        << "the pinned pi is missing: run scripts/setup (" << PI_SERVER_DEFAULT_AGENT << ")";
  }
};

int count_deltas(const std::vector<json>& events) {
  int n = 0;
  for (const auto& e : events)
    if (e["event"].value("type", "") == "message_update" &&
        e["event"]["assistantMessageEvent"].value("type", "") == "text_delta")
      ++n;
  return n;
}

}  // namespace

TEST_F(RealPi, StreamsAnAnswerFromTheDemoModel) {
  Daemon d({.use_fake_agent = false});
  WsClient c(d.port());
  auto created = open_session(c, "real");
  EXPECT_EQ(created["data"]["sessionInfo"]["model"], "pi-server-demo/demo-1");
  EXPECT_TRUE(created["data"]["sessionInfo"]["sessionFile"].is_string());
  pid_t pid = created["data"]["sessionInfo"]["pid"];

  auto events = run_prompt(c, "real", "stream 20", "p1", std::chrono::seconds(60));
  EXPECT_EQ(count_deltas(events), 20);
  EXPECT_EQ(final_text(events), "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 ");
  expect_contiguous_seq(session_events(c, "real"));

  auto messages = c.request({{"type", "get_messages"}, {"id", "m"}, {"sessionId", "real"}});
  ASSERT_EQ(messages["success"], true);
  int users = 0, assistants = 0;
  for (const auto& m : messages["data"]["messages"]) {
    users += m["role"] == "user";
    assistants += m["role"] == "assistant";
  }
  EXPECT_EQ(users, 1);
  EXPECT_EQ(assistants, 1);
  EXPECT_EQ(messages["sessionVersion"], 1) << "get_messages is read-only; the prompt bumped it once";

  auto del = c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "real"}});
  EXPECT_EQ(del["success"], true);
  EXPECT_FALSE(process_exists(pid));
}

TEST_F(RealPi, RunsAToolCall) {
  Daemon d({.use_fake_agent = false});
  WsClient c(d.port());
  open_session(c, "tool");
  auto events = run_prompt(c, "tool", "tool", "p", std::chrono::seconds(60));
  bool started = false, ended = false;
  for (const auto& e : events) {
    started |= e["event"].value("type", "") == "tool_execution_start" && e["event"]["toolName"] == "bash";
    ended |= e["event"].value("type", "") == "tool_execution_end";
  }
  EXPECT_TRUE(started);
  EXPECT_TRUE(ended);
  EXPECT_EQ(final_text(events), "Tool said: \"hi\". Done.");
}

TEST_F(RealPi, RelaysCommandsAndMapsIdsBack) {
  Daemon d({.use_fake_agent = false});
  WsClient c(d.port());
  open_session(c, "cmd");
  auto state = c.request({{"type", "get_state"}, {"id", "same-id"}, {"sessionId", "cmd"}});
  EXPECT_EQ(state["success"], true);
  EXPECT_EQ(state["id"], "same-id");
  EXPECT_EQ(state["data"]["model"]["provider"], "pi-server-demo");
  auto unknown = c.request({{"type", "frobnicate"}, {"id", "u"}, {"sessionId", "cmd"}});
  EXPECT_EQ(unknown["success"], false);
  EXPECT_EQ(unknown["error"], "Unknown command: frobnicate");
  auto name = c.request({{"type", "set_session_name"}, {"id", "n"}, {"sessionId", "cmd"}, {"name", "demo"}});
  EXPECT_EQ(name["success"], true);
  bool saw_info = false;
  for (const auto& j : c.history()) saw_info |= is_event(j, "cmd", "session_info_changed");
  EXPECT_TRUE(saw_info) << "pi emits session_info_changed before its response";
}

TEST_F(RealPi, ProviderErrorArrivesAsAnErrorMessage) {
  Daemon d({.use_fake_agent = false});
  WsClient c(d.port());
  open_session(c, "err");
  c.request({{"type", "set_auto_retry"}, {"id", "r"}, {"sessionId", "err"}, {"enabled", false}});
  auto events = run_prompt(c, "err", "error 500", "p", std::chrono::seconds(60));
  bool error_end = false;
  for (const auto& e : events)
    error_end |= e["event"].value("type", "") == "message_end" &&
                 e["event"]["message"].value("stopReason", "") == "error";
  EXPECT_TRUE(error_end);
}

TEST_F(RealPi, SettingsStayPrivateToTheirSession) {
  Daemon d({.use_fake_agent = false});
  WsClient c(d.port());
  open_session(c, "one");
  c.request({{"type", "create_session"}, {"id", "c2"}, {"sessionId", "two"}}, std::chrono::seconds(30));
  auto set = c.request({{"type", "set_steering_mode"}, {"id", "s"}, {"sessionId", "one"}, {"mode", "all"}});
  EXPECT_EQ(set["success"], true);
  auto two = c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "two"}});
  EXPECT_EQ(two["data"]["steeringMode"], "one-at-a-time");
  EXPECT_TRUE(std::filesystem::exists(d.state_dir() + "/sessions/one/agent/settings.json"));
  EXPECT_FALSE(std::filesystem::exists(d.state_dir() + "/sessions/two/agent/settings.json"));
  EXPECT_FALSE(std::filesystem::exists(d.state_dir() + "/agent/settings.json"));
}

namespace {

// Waits until the warm pool has an agent ready (a fresh id each time: a repeated one would
// replay the first answer).
bool wait_pool_ready(WsClient& c) {
  static int n = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = c.request({{"type", "get_metrics"}, {"id", "pool-" + std::to_string(++n)}});
    if (m["data"]["warmPool"]["ready"] == 1) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Hibernate a real pi session and wake it: cold (a new pi on the session file) or on a
// pooled pi that switches to the file. Either way the conversation, model and thinking level
// come back and go on.
void hibernate_and_wake(bool pooled) {
  Daemon d({.args = {"--hibernate-after-ms", "1500", "--warm-agents", pooled ? "1" : "0"},
            .use_fake_agent = false});
  WsClient c(d.port());
  auto created = open_session(c, "sleepy");
  pid_t pid = created["data"]["sessionInfo"]["pid"];
  run_prompt(c, "sleepy", "stream 5", "p1", std::chrono::seconds(60));
  auto before = c.request({{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "sleepy"}});
  ASSERT_EQ(before["success"], true);
  ASSERT_GE(before["data"]["messages"].size(), 2u);
  auto state_before = c.request({{"type", "get_state"}, {"id", "s1"}, {"sessionId", "sleepy"}});

  auto slept = c.wait_for([](const json& j) { return j.value("type", "") == "session_hibernated"; },
                          std::chrono::seconds(30));
  ASSERT_TRUE(slept);
  EXPECT_FALSE(process_exists(pid));
  if (pooled) {
    ASSERT_TRUE(wait_pool_ready(c));
  }

  auto after = c.request({{"type", "get_messages"}, {"id", "m2"}, {"sessionId", "sleepy"}},
                         std::chrono::seconds(60));
  ASSERT_EQ(after["success"], true) << after.dump();
  EXPECT_EQ(after["data"]["messages"], before["data"]["messages"]);
  auto woken = c.seen_or_wait([](const json& j) { return j.value("type", "") == "session_woken"; },
                              std::chrono::seconds(5));
  ASSERT_TRUE(woken);
  EXPECT_EQ((*woken)["data"]["fromPool"], pooled);
  auto state_after = c.request({{"type", "get_state"}, {"id", "s2"}, {"sessionId", "sleepy"}});
  for (const char* key : {"sessionFile", "sessionId", "model", "thinkingLevel"})
    EXPECT_EQ(state_after["data"][key], state_before["data"][key]) << key;
  // The woken agent goes on with the same conversation.
  auto events = run_prompt(c, "sleepy", "stream 3", "p2", std::chrono::seconds(60));
  EXPECT_EQ(final_text(events), "w0 w1 w2 ");
  auto last = c.request({{"type", "get_messages"}, {"id", "m3"}, {"sessionId", "sleepy"}});
  EXPECT_GT(last["data"]["messages"].size(), before["data"]["messages"].size());
}

}  // namespace

TEST_F(RealPi, AHibernatedSessionWakesWithItsConversation) { hibernate_and_wake(false); }

TEST_F(RealPi, AHibernatedSessionWakesOnAPooledAgentWithItsConversation) { hibernate_and_wake(true); }

// A session whose settings differ from the pool's (pi wrote set_steering_mode into its
// private settings.json) wakes cold: a pooled pi read other settings at its start.
TEST_F(RealPi, ASessionWithSettingsOfItsOwnWakesColdAndKeepsThem) {
  Daemon d({.args = {"--hibernate-after-ms", "1500", "--warm-agents", "1"}, .use_fake_agent = false});
  WsClient c(d.port());
  open_session(c, "own");
  auto set = c.request({{"type", "set_steering_mode"}, {"id", "m"}, {"sessionId", "own"}, {"mode", "all"}});
  ASSERT_EQ(set["success"], true) << set.dump();
  ASSERT_TRUE(c.wait_for([](const json& j) { return j.value("type", "") == "session_hibernated"; },
                         std::chrono::seconds(30)));
  ASSERT_TRUE(wait_pool_ready(c));
  auto state = c.request({{"type", "get_state"}, {"id", "s"}, {"sessionId", "own"}}, std::chrono::seconds(60));
  ASSERT_EQ(state["success"], true) << state.dump();
  EXPECT_EQ(state["data"]["steeringMode"], "all");
  auto woken = c.seen_or_wait([](const json& j) { return j.value("type", "") == "session_woken"; },
                              std::chrono::seconds(5));
  ASSERT_TRUE(woken);
  EXPECT_EQ((*woken)["data"]["fromPool"], false);
}

// A pooled pi moved to another cwd by switch_session: the create's answer is what pi says
// afterwards, and its tools run in the new cwd.
TEST_F(RealPi, APooledAgentCreatedForAnotherCwdRunsThere) {
  TempDir other;
  Daemon d({.args = {"--warm-agents", "1", "--workspace-root", std::filesystem::current_path().string(),
                     "--workspace-root", other.path()},
            .use_fake_agent = false});
  WsClient c(d.port());
  ASSERT_TRUE(wait_pool_ready(c));
  auto created = c.request({{"type", "create_session"}, {"id", "c"}, {"sessionId", "far"}, {"cwd", other.path()}},
                           std::chrono::seconds(30));
  ASSERT_EQ(created["success"], true) << created.dump();
  EXPECT_EQ(c.request({{"type", "get_metrics"}, {"id", "pm2"}})["data"]["warmPool"]["hits"], 1);
  auto info = created["data"]["sessionInfo"];
  auto state = c.request({{"type", "get_state"}, {"id", "s"}, {"sessionId", "far"}})["data"];
  EXPECT_EQ(info["sessionFile"], state["sessionFile"]);
  EXPECT_EQ(info["agentSessionId"], state["sessionId"]);
  EXPECT_EQ(info["model"], state["model"]["provider"].get<std::string>() + "/" + state["model"]["id"].get<std::string>());
  EXPECT_EQ(info["thinkingLevel"], state["thinkingLevel"]);
  auto events = run_prompt(c, "far", "pwd", "p", std::chrono::seconds(60));
  EXPECT_EQ(final_text(events), "Tool said: \"" + other.path() + "\". Done.");
}

// pi-server-client's chat with the real pi: the streamed answer is the demo model's.
TEST_F(RealPi, ClientChatStreamsTheRealAnswer) {
  Daemon d({.use_fake_agent = false});
  auto run = run_client({"--url", "ws://127.0.0.1:" + std::to_string(d.port()), "chat", "Hello", "from", "the", "CLI"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("You said: \"Hello from the CLI\""), std::string::npos) << run.out;
  EXPECT_EQ(run.out.back(), '\n');
}
