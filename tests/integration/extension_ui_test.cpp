// Extension UI dialogs through the daemon: forwarding, first answer wins, timeouts, abort.
#include <gtest/gtest.h>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {
std::string open_dialog(WsClient& c, const std::string& session, const std::string& message = "ui") {
  c.request({{"type", "prompt"}, {"id", "p-" + session}, {"sessionId", session}, {"message", message}});
  auto req = c.wait_for([&](const json& j) { return is_event(j, session, "extension_ui_request"); });
  EXPECT_TRUE(req);
  if (!req) return {};
  EXPECT_EQ((*req)["event"]["method"], "select");
  return (*req)["event"]["id"];
}
}  // namespace

TEST(ExtensionUi, FirstAnswerIsForwardedLaterOnesAreNotPending) {
  Daemon d;
  WsClient a(d.port());
  WsClient b(d.port());
  open_session(a, "ui");
  ASSERT_TRUE(b.next());
  b.request({{"type", "switch_session"}, {"id", "sw"}, {"sessionId", "ui"}});
  std::string ui_id = open_dialog(a, "ui");
  ASSERT_TRUE(b.seen_or_wait([&](const json& j) { return is_event(j, "ui", "extension_ui_request"); }))
      << "every subscriber sees the dialog";
  // pi's own shape: the dialog id travels as "id".
  auto first = a.request({{"type", "extension_ui_response"}, {"id", ui_id}, {"sessionId", "ui"}, {"value", "green"}});
  EXPECT_EQ(first["success"], true);
  auto late = b.request({{"type", "extension_ui_response"}, {"id", ui_id}, {"sessionId", "ui"}, {"value", "red"}});
  EXPECT_EQ(late["success"], false);
  EXPECT_EQ(late["code"], "not_pending");
  auto unknown = a.request({{"type", "extension_ui_response"}, {"id", "r1"}, {"uiRequestId", "nope"},
                            {"sessionId", "ui"}, {"value", "x"}});
  EXPECT_EQ(unknown["code"], "not_pending");
  ASSERT_TRUE(a.seen_or_wait([](const json& j) { return is_event(j, "ui", "agent_settled"); }));
  EXPECT_EQ(final_text(session_events(a, "ui")), "picked green");
}

TEST(ExtensionUi, UnansweredDialogIsCancelledAtTheTimeout) {
  Daemon d({.args = {"--ui-timeout-ms", "300"}});
  WsClient c(d.port());
  open_session(c, "t");
  std::string ui_id = open_dialog(c, "t");
  auto cancelled = c.wait_for([](const json& j) { return j.value("type", "") == "extension_ui_cancelled"; },
                              std::chrono::seconds(5));
  ASSERT_TRUE(cancelled);
  EXPECT_EQ((*cancelled)["data"]["id"], ui_id);
  EXPECT_EQ((*cancelled)["data"]["reason"], "timeout");
  ASSERT_TRUE(c.seen_or_wait([](const json& j) { return is_event(j, "t", "agent_settled"); }));
  EXPECT_EQ(final_text(session_events(c, "t")), "picked nothing");
}

TEST(ExtensionUi, AbortIsAnsweredEvenWithAnOpenDialog) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "ab");
  open_dialog(c, "ab");
  auto r = c.request({{"type", "abort"}, {"id", "abort"}, {"sessionId", "ab"}}, std::chrono::seconds(5));
  EXPECT_EQ(r["success"], true);
  bool cancelled = false;
  for (const auto& j : c.history())
    cancelled |= j.value("type", "") == "extension_ui_cancelled" && j["data"]["reason"] == "aborted";
  EXPECT_TRUE(cancelled);
}

TEST(ExtensionUi, BashUpdatesCarryTheClientsOwnId) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "b");
  auto r = c.request({{"type", "bash"}, {"id", "my-bash"}, {"sessionId", "b"}, {"command", "ls"}});
  EXPECT_EQ(r["success"], true);
  bool saw = false;
  for (const auto& j : c.history())
    if (is_event(j, "b", "bash_execution_update")) {
      EXPECT_EQ(j["event"]["id"], "my-bash");
      saw = true;
    }
  EXPECT_TRUE(saw);
}

TEST(ExtensionUi, Protocol1xAnswerShapeIsAccepted) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "v1");
  std::string ui_id = open_dialog(c, "v1");
  // protocol 1.x: requestId + response {method, value}
  auto r = c.request({{"type", "extension_ui_response"}, {"id", "ans"}, {"sessionId", "v1"},
                      {"requestId", ui_id}, {"response", {{"method", "select"}, {"value", "blue"}}}});
  EXPECT_EQ(r["success"], true) << r.dump();
  ASSERT_TRUE(c.seen_or_wait([](const json& j) { return is_event(j, "v1", "agent_settled"); }));
  EXPECT_EQ(final_text(session_events(c, "v1")), "picked blue");
  auto wrong = c.request({{"type", "extension_ui_response"}, {"id", "ans2"}, {"sessionId", "v1"},
                          {"requestId", ui_id}, {"response", "blue"}});
  EXPECT_EQ(wrong["code"], "invalid_command") << "response must be an object";
}
