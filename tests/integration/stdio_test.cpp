// The stdio transport: the same protocol as WebSocket, JSON lines on stdin/stdout.
#include <gtest/gtest.h>

#include "daemon.hpp"
#include "session_helpers.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

json next_json(Daemon& d) {
  auto line = d.read_stdout_line(std::chrono::seconds(15));
  EXPECT_TRUE(line.has_value()) << "no line on stdout";
  if (!line) return json();
  auto j = json::parse(*line, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "stdout carries protocol frames only: " << *line;
  return j;
}

json until(Daemon& d, const std::function<bool(const json&)>& match, std::vector<json>* seen = nullptr) {
  for (int i = 0; i < 10000; ++i) {
    json j = next_json(d);
    if (j.is_null()) return j;
    if (seen) seen->push_back(j);
    if (match(j)) return j;
  }
  return json();
}

}  // namespace

TEST(Stdio, ServesTheSameProtocol) {
  Daemon d({.stdio_only = true});
  json ready = next_json(d);
  EXPECT_EQ(ready["type"], "server_ready");
  EXPECT_EQ(ready["data"]["transports"], json::array({"stdio"}));
  d.write_stdin(R"({"type":"create_session","id":"c","sessionId":"s"})");
  EXPECT_EQ(until(d, [](const json& j) { return is_response(j, "c"); })["success"], true);
  d.write_stdin(R"({"type":"prompt","id":"p","sessionId":"s","message":"stream 7"})");
  std::vector<json> seen;
  until(d, [](const json& j) { return is_event(j, "s", "agent_settled"); }, &seen);
  std::vector<json> events;
  for (auto& j : seen)
    if (j["type"] == "event") events.push_back(j);
  expect_contiguous_seq(events);
  EXPECT_GE(events.size(), 7u);
}

TEST(Stdio, BadLinesGetErrorsAndOverlongLinesPayloadTooLarge) {
  Daemon d({.args = {"--max-frame-bytes", "256"}, .stdio_only = true});
  next_json(d);
  d.write_stdin("this is not json");
  EXPECT_EQ(next_json(d)["code"], "invalid_command");
  d.write_stdin(R"({"type":"list_sessions","pad":")" + std::string(1000, 'x') + "\"}");
  EXPECT_EQ(next_json(d)["code"], "payload_too_large");
  d.write_stdin(R"({"type":"list_sessions","id":"l"})");
  json r = until(d, [](const json& j) { return is_response(j, "l"); });
  EXPECT_EQ(r["id"], "l");
  EXPECT_EQ(r["success"], true);
}

TEST(Stdio, EndOfInputFinishesRunningWorkThenExitsZero) {
  Daemon d({.stdio_only = true});
  next_json(d);
  d.write_stdin(R"({"type":"create_session","id":"c","sessionId":"s"})");
  d.write_stdin(R"({"type":"prompt","id":"p","sessionId":"s","message":"slow 5 40"})");
  d.close_stdin();
  std::vector<json> seen;
  json settled = until(d, [](const json& j) { return is_event(j, "s", "agent_settled"); }, &seen);
  EXPECT_FALSE(settled.is_null());
  int deltas = 0;
  for (auto& j : seen)
    if (j["type"] == "event" && j["event"]["type"] == "message_update" &&
        j["event"]["assistantMessageEvent"]["type"] == "text_delta")
      ++deltas;
  EXPECT_EQ(deltas, 5);
  auto code = d.wait_exit(std::chrono::seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}

// EOF ends the last line: a command without a trailing newline is still executed.
TEST(Stdio, LastLineWithoutNewlineIsProcessedAtEof) {
  Daemon d({.stdio_only = true});
  EXPECT_EQ(next_json(d)["type"], "server_ready");
  d.write_stdin_raw(R"({"type":"create_session","id":"c","sessionId":"s"})");
  d.close_stdin();
  std::vector<json> seen;
  json created = until(d, [](const json& j) { return is_response(j, "c") || j["type"] == "server_shutdown"; },
                       &seen);
  EXPECT_TRUE(is_response(created, "c")) << "the unterminated last line got no response";
  EXPECT_EQ(created["success"], true);
  auto code = d.wait_exit(std::chrono::seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}

// The unterminated last line obeys the frame-size limit like any other line.
TEST(Stdio, OverlongLastLineWithoutNewlineIsPayloadTooLarge) {
  Daemon d({.args = {"--max-frame-bytes", "256"}, .stdio_only = true});
  next_json(d);
  d.write_stdin_raw(R"({"type":"list_sessions","id":"l","pad":")" + std::string(100000, 'x') + "\"}");
  d.close_stdin();
  json r = until(d, [](const json& j) { return j["type"] == "response" || j["type"] == "server_shutdown"; });
  EXPECT_EQ(r["code"], "payload_too_large");
  EXPECT_FALSE(r.contains("id"));
  auto code = d.wait_exit(std::chrono::seconds(15));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}
