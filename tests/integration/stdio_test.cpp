// The stdio transport: the same protocol as WebSocket, JSON lines on stdin/stdout.
#include <gtest/gtest.h>

#include <signal.h>

#include <map>
#include <thread>

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

// What came back on stdout for a flood: responses counted by id, and the rest by kind.
struct FloodResult {
  std::map<std::string, int> responses_by_id;
  int invalid_without_id = 0;   // the garbage lines' invalid_command answers
  int other_without_id = 0;     // responses without id that are not invalid_command
  int server_shutdown = 0;
  int not_json = 0;
  std::optional<int> exit_code;
};

// Writes `commands` list_sessions commands (ids l0, l1, ...), each followed by
// `garbage_per_command` garbage lines, from a thread, then closes stdin; meanwhile reads
// stdout to its end (EOF), pausing `pause` after every 1000 lines (a consumer slower than
// the producer), and waits for the daemon's exit.
FloodResult flood(Daemon& d, int commands, int garbage_per_command, std::chrono::milliseconds pause) {
  ::signal(SIGPIPE, SIG_IGN);  // a daemon that exits early must fail the test, not kill it
  std::thread writer([&] {
    try {
      std::string batch;
      for (int i = 0; i < commands; ++i) {
        batch += R"({"type":"list_sessions","id":"l)" + std::to_string(i) + "\"}\n";
        for (int g = 0; g < garbage_per_command; ++g)
          batch += (g % 2 ? "{\"type\":" : "garbage line ") + std::to_string(i) + "\n";
        if (batch.size() > 64 * 1024) {
          d.write_stdin_raw(batch);
          batch.clear();
        }
      }
      d.write_stdin_raw(batch);
    } catch (const std::exception&) {
      // stdin closed early: the daemon is gone; the counts below tell what was lost.
    }
    d.close_stdin();
  });
  FloodResult r;
  for (std::size_t lines = 1;; ++lines) {
    auto line = d.read_stdout_line(std::chrono::seconds(60));
    if (!line) break;  // EOF (or a silent minute)
    if (lines % 1000 == 0) std::this_thread::sleep_for(pause);
    auto j = json::parse(*line, nullptr, false);
    if (j.is_discarded()) {
      ++r.not_json;
      continue;
    }
    if (j.value("type", "") == "response") {
      if (j.contains("id"))
        ++r.responses_by_id[j["id"].get<std::string>()];
      else if (j.value("code", "") == "invalid_command")
        ++r.invalid_without_id;
      else
        ++r.other_without_id;
    } else if (j.value("type", "") == "server_shutdown") {
      ++r.server_shutdown;
    }
  }
  writer.join();
  r.exit_code = d.wait_exit(std::chrono::seconds(30));
  return r;
}

void expect_every_line_answered(const FloodResult& r, int commands, int garbage_per_command) {
  int missing = 0, duplicated = 0;
  for (int i = 0; i < commands; ++i) {
    auto it = r.responses_by_id.find("l" + std::to_string(i));
    if (it == r.responses_by_id.end()) ++missing;
    else if (it->second != 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0) << "commands without a response";
  EXPECT_EQ(duplicated, 0) << "commands with more than one response";
  EXPECT_EQ(r.responses_by_id.size(), static_cast<std::size_t>(commands)) << "responses to unknown ids";
  EXPECT_EQ(r.invalid_without_id, commands * garbage_per_command);
  EXPECT_EQ(r.other_without_id, 0);
  EXPECT_EQ(r.not_json, 0);
  EXPECT_EQ(r.server_shutdown, 1);
  ASSERT_TRUE(r.exit_code.has_value()) << "the daemon did not exit";
  EXPECT_EQ(*r.exit_code, 0);
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

// The attacker's flood at a test's scale: every command and every garbage line is answered
// before the daemon exits 0, however far behind the output is when stdin closes.
TEST(Stdio, FloodThenEofAnswersEveryLineBeforeExiting) {
  Daemon d({.args = {"--rate-limit", "10000000", "--rate-burst", "10000000"}, .stdio_only = true});
  constexpr int kCommands = 20000, kGarbage = 2;
  // 60 000 answers read in about 2 s, so most of them are still queued when stdin closes.
  FloodResult r = flood(d, kCommands, kGarbage, std::chrono::milliseconds(30));
  expect_every_line_answered(r, kCommands, kGarbage);
}

// The same with small outbound limits: the responses outrun the consumer by far more than
// the hard cap, and still none is dropped (stdin is read only as fast as stdout drains).
TEST(Stdio, FloodOverTheOutboundHardCapDropsNoResponse) {
  Daemon d({.args = {"--rate-limit", "10000000", "--rate-burst", "10000000",
                     "--outbound-high-water-bytes", "65536", "--outbound-hard-cap-bytes", "131072"},
            .stdio_only = true});
  constexpr int kCommands = 20000, kGarbage = 2;
  FloodResult r = flood(d, kCommands, kGarbage, std::chrono::milliseconds(1));
  expect_every_line_answered(r, kCommands, kGarbage);
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

// A consumer that stops reading stdout: the drain timeout ends the daemon with frames still
// unwritten, and that is an error exit (3), never 0.
TEST(Stdio, DrainTimeoutCuttingOffOutputExitsNonZero) {
  Daemon d({.args = {"--rate-limit", "10000000", "--rate-burst", "10000000", "--drain-timeout-ms", "500"},
            .stdio_only = true});
  // About 1 MB of responses, far more than the stdout pipe holds; never read.
  std::string batch;
  for (int i = 0; i < 10000; ++i) batch += R"({"type":"list_sessions","id":"l)" + std::to_string(i) + "\"}\n";
  d.write_stdin_raw(batch);
  d.close_stdin();
  auto code = d.wait_exit(std::chrono::seconds(15));
  ASSERT_TRUE(code.has_value()) << "the drain timeout did not end the daemon";
  EXPECT_EQ(*code, 3);
  EXPECT_TRUE(d.wait_log("stdio_output_cut_off", std::chrono::seconds(5)).has_value());
}
