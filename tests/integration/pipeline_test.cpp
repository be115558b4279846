// The reliability pipeline through the real daemon: replay, conflicts, versions, history,
// lifecycle events.
#include <gtest/gtest.h>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

TEST(Pipeline, DuplicateIdIsReplayedAndTheAgentDoesNotRunItAgain) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "r");
  run_prompt(c, "r", "stream 3", "p1");
  std::size_t events_before = session_events(c, "r").size();
  auto again = c.request({{"type", "prompt"}, {"id", "p1"}, {"sessionId", "r"}, {"message", "stream 3"}});
  EXPECT_EQ(again["success"], true);
  EXPECT_EQ(again["replayed"], true);
  // No new run: no agent events arrive.
  EXPECT_FALSE(c.wait_for([](const json& j) { return j.value("type", "") == "event"; },
                          std::chrono::milliseconds(400)));
  EXPECT_EQ(session_events(c, "r").size(), events_before);
  // The same id with another payload is a conflict.
  auto conflict = c.request({{"type", "prompt"}, {"id", "p1"}, {"sessionId", "r"}, {"message", "other"}});
  EXPECT_EQ(conflict["code"], "conflict");
}

TEST(Pipeline, ReplayWorksFromAnotherConnectionAndByIdempotencyKey) {
  Daemon d;
  WsClient a(d.port());
  open_session(a, "k");
  auto first = a.request({{"type", "set_session_name"}, {"id", "n1"}, {"idempotencyKey", "name-once"},
                          {"sessionId", "k"}, {"name", "x"}});
  EXPECT_EQ(first["success"], true);
  WsClient b(d.port());
  ASSERT_TRUE(b.next());
  auto dup = b.request({{"type", "set_session_name"}, {"id", "n2"}, {"idempotencyKey", "name-once"},
                        {"sessionId", "k"}, {"name", "x"}});
  EXPECT_EQ(dup["replayed"], true);
  EXPECT_EQ(dup["id"], "n2");
  EXPECT_EQ(dup["sessionVersion"], first["sessionVersion"]);
}

TEST(Pipeline, IfSessionVersionGuardsMutations) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "v");
  auto state = c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "v"}});
  std::uint64_t version = state["sessionVersion"];
  auto ok = c.request({{"type", "set_session_name"}, {"id", "a"}, {"sessionId", "v"}, {"name", "one"},
                       {"ifSessionVersion", version}});
  EXPECT_EQ(ok["success"], true);
  EXPECT_EQ(ok["sessionVersion"], version + 1);
  auto stale = c.request({{"type", "set_session_name"}, {"id", "b"}, {"sessionId", "v"}, {"name", "two"},
                          {"ifSessionVersion", version}});
  EXPECT_EQ(stale["code"], "version_mismatch");
  EXPECT_EQ(stale["data"]["currentVersion"], version + 1);
}

TEST(Pipeline, LifecycleEventsFrameTheResponseAndCanBeTurnedOff) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  c.request({{"type", "list_sessions"}, {"id", "l1"}});
  auto finished = c.wait_for([](const json& j) { return j.value("type", "") == "command_finished"; });
  ASSERT_TRUE(finished);
  std::vector<std::string> order;
  for (const auto& j : c.history()) order.push_back(j["type"]);
  EXPECT_EQ(order, (std::vector<std::string>{"server_ready", "command_accepted", "command_started",
                                             "response", "command_finished"}));
  c.request({{"type", "set_lifecycle_events"}, {"id", "off"}, {"enabled", false}});
  c.request({{"type", "list_sessions"}, {"id", "l2"}});
  EXPECT_FALSE(c.wait_for([](const json& j) { return j.value("type", "").rfind("command_", 0) == 0; },
                          std::chrono::milliseconds(300)));
}

TEST(Pipeline, CommandHistoryListsWhatRan) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "h");
  c.request({{"type", "get_state"}, {"id", "g1"}, {"sessionId", "h"}});
  auto history = c.request({{"type", "get_command_history"}, {"id", "hist"}, {"sessionIdFilter", "h"}});
  ASSERT_EQ(history["success"], true);
  std::vector<std::string> ids;
  for (const auto& e : history["data"]["commands"]) ids.push_back(e.value("commandId", ""));
  EXPECT_NE(std::find(ids.begin(), ids.end(), "g1"), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), "create-h"), ids.end());
}

// Shapes protocol 1.x clients read, kept beside ours.
TEST(Pipeline, Protocol1xShapesOfHistoryAndDelete) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "h1");
  for (int i = 0; i < 3; ++i)
    c.request({{"type", "get_state"}, {"id", "g" + std::to_string(i)}, {"sessionId", "h1"}});
  auto history = c.request({{"type", "get_command_history"}, {"id", "hist"}, {"limit", 2}});
  ASSERT_EQ(history["success"], true);
  EXPECT_EQ(history["data"]["entries"], history["data"]["commands"]);
  EXPECT_EQ(history["data"]["returned"], 2);
  EXPECT_EQ(history["data"]["truncated"], true);
  auto all = c.request({{"type", "get_command_history"}, {"id", "hist2"}, {"limit", 1000}});
  EXPECT_EQ(all["data"]["truncated"], false);
  auto del = c.request({{"type", "delete_session"}, {"id", "del"}, {"sessionId", "h1"}});
  EXPECT_EQ(del["data"]["deleted"], true);
  EXPECT_EQ(del["data"]["sessionId"], "h1");
}

TEST(Pipeline, UnknownTypeWithoutSessionIsUnknownCommand) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  auto r = c.request({{"type", "no_such_command"}, {"id", "u1"}});
  EXPECT_EQ(r["success"], false);
  EXPECT_EQ(r["code"], "unknown_command");
  EXPECT_EQ(r["command"], "no_such_command");
  auto relayed = c.request({{"type", "prompt"}, {"id", "u2"}, {"sessionId", "nope"}, {"message", 7}});
  EXPECT_EQ(relayed["code"], "invalid_command") << "field types are checked before the session is looked up";
  EXPECT_EQ(relayed["error"], "Field 'message' must be a string");
}
