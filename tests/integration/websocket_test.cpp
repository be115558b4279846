// The WebSocket transport against the real daemon binary and the fake agent.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "daemon.hpp"
#include "raw_socket.hpp"
#include "session_helpers.hpp"
#include "prometheus_check.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

TEST(WebSocket, ServerReadyComesFirstWithLimits) {
  Daemon d;
  WsClient c(d.port());
  auto ready = c.next();
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["type"], "server_ready");
  const auto& data = (*ready)["data"];
  EXPECT_TRUE(data["connectionId"].is_string());
  EXPECT_EQ(data["transports"], json::array({"websocket"}));
  EXPECT_TRUE(data["limits"]["maxFrameBytes"].is_number());
  EXPECT_TRUE(data["serverVersion"].is_string());
  EXPECT_TRUE(data["protocolVersion"].is_string());
}

TEST(WebSocket, HttpRoutesOnTheSamePort) {
  Daemon d;
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
  EXPECT_EQ(http_get(d.port(), "/readyz").status, 200u);
  auto metrics = http_get(d.port(), "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("# TYPE pi_server_sessions gauge"), std::string::npos);
  EXPECT_EQ(http_get(d.port(), "/nope").status, 404u);
}

TEST(WebSocket, PromptStreamsTaggedEventsWithContiguousSeq) {
  Daemon d;
  WsClient c(d.port());
  auto created = open_session(c, "s1");
  EXPECT_EQ(created["data"]["sessionId"], "s1");
  EXPECT_EQ(created["sessionId"], "s1");
  auto events = run_prompt(c, "s1", "stream 50", "p1");
  int deltas = 0;
  for (const auto& e : events)
    if (e["event"].value("type", "") == "message_update" &&
        e["event"]["assistantMessageEvent"]["type"] == "text_delta")
      ++deltas;
  EXPECT_EQ(deltas, 50);
  expect_contiguous_seq(session_events(c, "s1"));
  // A second run continues the same sequence.
  run_prompt(c, "s1", "stream 3", "p2");
  expect_contiguous_seq(session_events(c, "s1"));
}

TEST(WebSocket, BadInputGetsOneClearErrorAndChangesNothing) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  struct Case {
    std::string input;
    std::string code;
  };
  std::vector<Case> cases = {
      {"{not json", "invalid_command"},
      {"[1,2,3]", "invalid_command"},
      {"42", "invalid_command"},
      {R"({"id":"x1"})", "invalid_command"},
      {R"({"type":5,"id":"x2"})", "invalid_command"},
      {R"({"type":"prompt","id":"x3","message":"hi"})", "invalid_command"},
      {R"({"type":"prompt","id":"x4","sessionId":"nope","message":"hi"})", "session_not_found"},
      {R"({"type":"delete_session","id":"x5","sessionId":"nope"})", "session_not_found"},
      {R"({"type":"create_session","id":"x6","cwd":42})", "invalid_command"},
      // Outside every workspace root: refused before its existence is looked at.
      {R"({"type":"create_session","id":"x7","cwd":"/definitely/not/here"})", "forbidden"},
      {R"({"type":"create_session","id":"x8","sessionId":"../escape"})", "invalid_command"},
      {R"({"type":"create_session","id":"x9","model":"no-slash"})", "invalid_command"},
      {R"({"type":"create_session","id":"x10","thinkingLevel":"galaxy"})", "invalid_command"},
      {R"({"type":"switch_session","id":"x11","sessionId":"nope"})", "session_not_found"},
      // 100k levels: copying or dumping it would recurse that deep; refused before.
      {R"({"type":"get_state","id":"x12","sessionId":"nope","a":)" + std::string(100000, '[') +
           std::string(100000, ']') + "}",
       "invalid_command"},
  };
  for (const auto& tc : cases) {
    c.send_text(tc.input);
    auto r = c.wait_for([](const json& j) { return j.value("type", "") == "response"; });
    ASSERT_TRUE(r) << tc.input;
    EXPECT_EQ((*r)["type"], "response") << tc.input;
    EXPECT_EQ((*r)["success"], false) << tc.input;
    EXPECT_EQ((*r)["code"], tc.code) << tc.input << " -> " << r->dump();
    EXPECT_TRUE((*r)["error"].is_string());
    auto parsed = json::parse(tc.input, nullptr, false);
    bool had_string_id = parsed.is_object() && parsed.contains("id") && parsed["id"].is_string();
    EXPECT_EQ(r->contains("id"), had_string_id) << "a response never invents an id: " << tc.input;
  }
  auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
  EXPECT_EQ(list["data"]["sessions"].size(), 0u);
}

TEST(WebSocket, UnknownSessionCommandIsRelayedToTheAgent) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "s1");
  auto r = c.request({{"type", "no_such_command"}, {"id", "u1"}, {"sessionId", "s1"}});
  EXPECT_EQ(r["success"], false);
  EXPECT_EQ(r["command"], "no_such_command");
  EXPECT_EQ(r["error"], "Unknown command: no_such_command");
  EXPECT_EQ(r["sessionId"], "s1");
}

TEST(WebSocket, CommandWithoutIdStillGetsItsResponse) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "s1");
  c.send({{"type", "get_state"}, {"sessionId", "s1"}});
  auto r = c.wait_for([](const json& j) { return j.value("type", "") == "response"; });
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->contains("id"));
  EXPECT_EQ((*r)["command"], "get_state");
  EXPECT_EQ((*r)["success"], true);
}

TEST(WebSocket, BinaryFrameIsRejectedNotExecuted) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  c.send_binary(R"({"type":"create_session","id":"b1","sessionId":"bin"})");
  auto r = c.next();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["code"], "invalid_command");
  auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
  EXPECT_EQ(list["data"]["sessions"].size(), 0u);
}

TEST(WebSocket, OversizeMessageClosesWith1009) {
  Daemon d({.args = {"--max-frame-bytes", "1024"}});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  c.send_text(R"({"type":"list_sessions","pad":")" + std::string(2000, 'x') + "\"}");
  EXPECT_FALSE(c.next(std::chrono::seconds(5)));
  EXPECT_EQ(c.close_code(), 1009);
  // The daemon is unharmed.
  WsClient c2(d.port());
  EXPECT_TRUE(c2.next());
}

namespace {

// Open client connections as the daemon counts them (get_metrics on `c`, which is open).
std::uint64_t open_connections(WsClient& c, const std::string& id) {
  return c.request({{"type", "get_metrics"}, {"id", id}})["data"]["connectionCount"];
}

}  // namespace

// Regression: the client is still sending the rest of its message when the daemon gives
// up on it. Closing the socket at once made the client's TCP stack see a reset and the
// close frame was lost (1006); the lingering close lets it read 1009.
TEST(WebSocket, OversizeMessageAtTheDefaultLimitDeliversClose1009) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  c.set_auto_fragment(false);  // one frame: the daemon refuses it at the header, mid-send
  const std::size_t total = (16u << 20) + 1024;  // default --max-frame-bytes + 1 KiB
  std::string head = R"({"type":"list_sessions","pad":")";
  std::string message = head + std::string(total - head.size() - 2, 'x') + "\"}";
  ASSERT_EQ(message.size(), total);
  bool write_failed = false;
  try {
    c.send_text(message);
  } catch (const std::exception&) {
    write_failed = true;  // the reset reached the client mid-message
  }
  EXPECT_FALSE(write_failed) << "the daemon reset the connection while the client was sending";
  EXPECT_FALSE(c.next(std::chrono::seconds(3)));
  EXPECT_EQ(c.close_code(), 1009) << "the close frame must reach the client (not 1006)";

  // The daemon still serves, and counts the connection as closed.
  WsClient c2(d.port());
  ASSERT_TRUE(c2.next());
  auto count = open_connections(c2, "m1");
  for (int i = 0; count != 1 && i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    count = open_connections(c2, "m" + std::to_string(i + 2));
  }
  EXPECT_EQ(count, 1u) << "only c2 is open";
  auto metrics = http_get(d.port(), "/metrics");
  EXPECT_EQ(prometheus_value(metrics.body, "pi_server_connections"), 1);
  EXPECT_EQ(prometheus_value(metrics.body, "pi_server_connections_total"), 2);
}

// A peer that goes on sending after the close frame (here: a frame announcing 4 GiB) is
// drained for the grace period (2 s) only, then the daemon closes the TCP connection.
TEST(WebSocket, PeerThatKeepsSendingAfterTheCloseIsCutOffAfterTheGracePeriod) {
  Daemon d({.args = {"--max-frame-bytes", "1024"}});
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(d.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string upgrade =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ASSERT_EQ(::send(fd, upgrade.data(), upgrade.size(), MSG_NOSIGNAL), (ssize_t)upgrade.size());
  std::string in;
  char buf[65536];
  while (in.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "no handshake response";
    in.append(buf, n);
  }
  ASSERT_EQ(in.rfind("HTTP/1.1 101", 0), 0u) << in;
  in.erase(0, in.find("\r\n\r\n") + 4);

  // A masked text frame header announcing 4 GiB, then an endless payload, throttled to
  // about 3 MB/s so the 2 s grace period (not the 64 MiB budget) is what ends it.
  std::string header = {'\x81', '\xFF', 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
  ASSERT_EQ(::send(fd, header.data(), header.size(), MSG_NOSIGNAL), (ssize_t)header.size());
  std::string chunk(16 * 1024, 'x');
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::steady_clock::now() - start; };
  bool cut_off = false;
  bool got_eof = false;
  while (elapsed() < std::chrono::seconds(8)) {
    ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      cut_off = true;  // EPIPE / ECONNRESET: the daemon closed its socket
      break;
    }
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) {
        in.append(buf, r);
        continue;
      }
      if (r == 0) got_eof = true;  // the daemon shut its write side down after the close frame
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) cut_off = true;
      break;
    }
    if (cut_off) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed());
  ::close(fd);
  EXPECT_TRUE(cut_off) << "still connected after " << took.count() << " ms";
  EXPECT_GE(took.count(), 1500) << "the daemon drains for the grace period first";
  EXPECT_LE(took.count(), 4000);
  EXPECT_TRUE(got_eof) << "the write side is shut down after the close frame";
  // After server_ready: the close frame with 1009.
  EXPECT_NE(in.find(std::string("\x88\x02\x03\xF1", 4)), std::string::npos)
      << "no close frame with 1009 in " << in.size() << " bytes";
  // The daemon is unharmed.
  WsClient c2(d.port());
  EXPECT_TRUE(c2.next());
}

TEST(WebSocket, InvalidUtf8ClosesWith1007) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  c.send_text(std::string("{\"type\":\"list_sessions\",\"x\":\"\xff\xfe\"}"));
  EXPECT_FALSE(c.next(std::chrono::seconds(5)));
  EXPECT_EQ(c.close_code(), 1007);
}

// Found by an attacker: Beast 1.81 echoed a close frame with code 5000 or 65535 (its
// is_valid_close_code accepts everything from 3000 up). RFC 6455 §7.4: codes from 5000 up
// are invalid, and a close frame carrying one fails the connection with 1002.
TEST(WebSocket, InvalidCloseCodesGetProtocolError1002) {
  Daemon d;
  auto close_reply = [&](std::uint16_t code) -> std::optional<int> {
    RawSocket s(d.port());
    std::string in;
    if (!s.connected() || !s.websocket_handshake(in)) return std::nullopt;
    // server_ready first, then our close frame.
    s.read_until(in, [](const std::string& b) { return b.find("server_ready") != std::string::npos; });
    in.clear();
    if (!s.send_all(masked_close_frame(code))) return std::nullopt;
    s.read_until(in, [](const std::string& b) { return find_close_code(b).has_value(); });
    return find_close_code(in);
  };
  for (std::uint16_t code : {5000, 65535, 999, 1005, 2999}) {
    SCOPED_TRACE(code);
    EXPECT_EQ(close_reply(code), 1002);
  }
  // Valid codes are echoed (1000-1003, 1007-1011, registered 1012/1013, 3000-4999).
  for (std::uint16_t code : {1000, 1001, 3000, 4000, 4999}) {
    SCOPED_TRACE(code);
    EXPECT_EQ(close_reply(code), code);
  }
  WsClient c(d.port());
  EXPECT_TRUE(c.next());
}

TEST(WebSocket, SubscribersShareIdenticalFrames) {
  Daemon d;
  WsClient a(d.port());
  WsClient b(d.port());
  open_session(a, "shared");
  ASSERT_TRUE(b.next());
  auto sub = b.request({{"type", "switch_session"}, {"id", "sw"}, {"sessionId", "shared"}});
  EXPECT_EQ(sub["success"], true);
  run_prompt(a, "shared", "stream 20", "p1");
  ASSERT_TRUE(b.wait_for([](const json& j) { return is_event(j, "shared", "agent_settled"); }));
  std::vector<std::string> frames_a, frames_b;
  for (auto& f : a.raw_history())
    if (f.rfind("{\"type\":\"event\"", 0) == 0) frames_a.push_back(f);
  for (auto& f : b.raw_history())
    if (f.rfind("{\"type\":\"event\"", 0) == 0) frames_b.push_back(f);
  EXPECT_EQ(frames_a, frames_b);
  EXPECT_GT(frames_a.size(), 20u);
  // After unsubscribe, b sees no more events.
  b.request({{"type", "unsubscribe"}, {"id", "un"}, {"sessionId", "shared"}});
  run_prompt(a, "shared", "stream 2", "p2");
  EXPECT_FALSE(b.wait_for([](const json& j) { return j.value("type", "") == "event"; },
                         std::chrono::milliseconds(300)));
}

TEST(WebSocket, UnicodeLineSeparatorsPassThroughUnsplit) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "u");
  auto events = run_prompt(c, "u", "u2028", "p");
  EXPECT_NE(final_text(events).find("\xE2\x80\xA8"), std::string::npos);
  EXPECT_NE(final_text(events).find("\xE2\x80\xA9"), std::string::npos);
  expect_contiguous_seq(session_events(c, "u"));
}

TEST(WebSocket, AgentGarbageLineIsDroppedAndTheStreamGoesOn) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "g");
  auto events = run_prompt(c, "g", "garbage", "p");
  EXPECT_FALSE(final_text(events).empty());
  expect_contiguous_seq(session_events(c, "g"));
  EXPECT_TRUE(d.wait_log("agent_line_invalid", std::chrono::seconds(5)));
}

TEST(WebSocket, SessionCreatedAndDeletedReachOtherConnections) {
  Daemon d;
  WsClient a(d.port());
  WsClient b(d.port());
  ASSERT_TRUE(b.next());
  open_session(a, "n1");
  EXPECT_TRUE(b.wait_for([](const json& j) {
    return j.value("type", "") == "session_created" && j["data"]["sessionId"] == "n1";
  }));
  a.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "n1"}});
  EXPECT_TRUE(b.wait_for([](const json& j) {
    return j.value("type", "") == "session_deleted" && j["data"]["sessionId"] == "n1";
  }));
}

TEST(WebSocket, DuplicateSessionIdIsRejected) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "dup");
  auto r = c.request({{"type", "create_session"}, {"id", "again"}, {"sessionId", "dup"}});
  EXPECT_EQ(r["code"], "session_exists");
}

TEST(WebSocket, ResumeAfterSeqReplaysTheBufferThenGoesLive) {
  Daemon d;
  WsClient a(d.port());
  open_session(a, "res");
  run_prompt(a, "res", "stream 10", "p1");
  auto events = session_events(a, "res");
  ASSERT_GT(events.size(), 10u);
  std::uint64_t last = events.back()["seq"];
  // A client that saw up to seq 5 reconnects.
  WsClient b(d.port());
  ASSERT_TRUE(b.next());
  auto r = b.request({{"type", "switch_session"}, {"id", "resume"}, {"sessionId", "res"}, {"afterSeq", 5}});
  EXPECT_EQ(r["data"]["gap"], false);
  EXPECT_EQ(r["data"]["firstSeq"], 6);
  EXPECT_EQ(r["data"]["replayedEvents"], last - 5);
  for (std::uint64_t seq = 6; seq <= last; ++seq) {
    auto e = b.wait_for([](const json& j) { return j.value("type", "") == "event"; });
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["seq"], seq);
  }
  // Then live events continue the same sequence.
  a.request({{"type", "prompt"}, {"id", "p2"}, {"sessionId", "res"}, {"message", "stream 1"}});
  auto live = b.wait_for([](const json& j) { return j.value("type", "") == "event"; });
  ASSERT_TRUE(live);
  EXPECT_EQ((*live)["seq"], last + 1);
}

TEST(WebSocket, ResumeFromBeyondTheBufferReportsTheGap) {
  Daemon d({.args = {"--event-buffer-bytes", "2000"}});
  WsClient a(d.port());
  open_session(a, "gap");
  run_prompt(a, "gap", "stream 50", "p1");
  WsClient b(d.port());
  ASSERT_TRUE(b.next());
  auto r = b.request({{"type", "switch_session"}, {"id", "resume"}, {"sessionId", "gap"}, {"afterSeq", 1}});
  EXPECT_EQ(r["data"]["gap"], true);
  EXPECT_GT(r["data"]["firstSeq"].get<std::uint64_t>(), 2u);
  EXPECT_LT(r["data"]["replayedEvents"].get<std::uint64_t>(), 20u) << "bounded by bytes";
}

// ---------------------------------------------------------------- framing (our own)

namespace {

bool has_frame(const std::string& in, int opcode, const std::string& payload_part = "") {
  for (const auto& f : server_frames(in))
    if (f.opcode == opcode && f.payload.find(payload_part) != std::string::npos) return true;
  return false;
}

// A raw client past its handshake and server_ready.
RawSocket ready_raw_client(std::uint16_t port, std::chrono::milliseconds recv_timeout = std::chrono::seconds(5)) {
  RawSocket s(port, recv_timeout);
  std::string in;
  EXPECT_TRUE(s.connected() && s.websocket_handshake(in));
  s.read_until(in, [](const std::string& b) { return has_frame(b, 0x1, "server_ready"); });
  return s;
}

}  // namespace

// One heartbeat monitor for all connections: a peer silent for a heartbeat period is pinged;
// one that stays silent for two is closed; one that answers stays.
TEST(WebSocket, HeartbeatPingsASilentPeerAndClosesOneThatNeverAnswers) {
  Daemon d({.args = {"--heartbeat-seconds", "1"}});
  auto start = std::chrono::steady_clock::now();
  RawSocket mute = ready_raw_client(d.port(), std::chrono::seconds(4));
  RawSocket alive = ready_raw_client(d.port(), std::chrono::seconds(4));
  // The other one answers each ping with a pong, meanwhile.
  int pongs = 0;
  std::thread answering([&] {
    std::string got;
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(3500)) {
      if (alive.read_until(got, [](const std::string& b) { return has_frame(b, 0x9); }) !=
          RawSocket::ReadEnd::data)
        return;
      got.clear();
      if (!alive.send_all(masked_frame(0xA, ""))) return;
      ++pongs;
    }
  });

  std::string in;
  ASSERT_EQ(mute.read_until(in, [](const std::string& b) { return has_frame(b, 0x9); }),
            RawSocket::ReadEnd::data)
      << "no ping for a silent peer";
  auto pinged = std::chrono::steady_clock::now() - start;
  EXPECT_GE(pinged, std::chrono::milliseconds(900));
  EXPECT_TRUE(mute.closed_by_peer()) << "a peer that never answers is closed";
  auto closed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(closed, std::chrono::milliseconds(1900));
  EXPECT_LE(closed, std::chrono::milliseconds(3900));
  answering.join();

  // ... and is still served, past the time the mute one was closed.
  EXPECT_GE(pongs, 2);
  std::string got;
  ASSERT_TRUE(alive.send_all(masked_frame(0x1, R"({"type":"list_sessions","id":"after"})")));
  EXPECT_EQ(alive.read_until(got, [](const std::string& b) { return has_frame(b, 0x1, "\"after\""); }),
            RawSocket::ReadEnd::data);
}

TEST(WebSocket, APingIsAnsweredWithItsPayload) {
  Daemon d;
  RawSocket s = ready_raw_client(d.port());
  ASSERT_TRUE(s.send_all(masked_frame(0x9, "are you there")));
  std::string in;
  EXPECT_EQ(s.read_until(in, [](const std::string& b) { return has_frame(b, 0xA, "are you there"); }),
            RawSocket::ReadEnd::data);
}

// Frames cut anywhere by TCP (here: one byte per write), fragmented messages and control
// frames between the fragments all make the same commands.
TEST(WebSocket, CommandsSurviveAnySplitAndFragmentation) {
  Daemon d;
  RawSocket s = ready_raw_client(d.port());
  std::string command = masked_frame(0x1, R"({"type":"list_sessions","id":"bytewise"})");
  for (char c : command) {
    ASSERT_TRUE(s.send_all(std::string(1, c)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string in;
  ASSERT_EQ(s.read_until(in, [](const std::string& b) { return has_frame(b, 0x1, "\"bytewise\""); }),
            RawSocket::ReadEnd::data);
  // {"type":"list_sessions","id":"frag"} in three frames with a ping in between.
  std::string first = masked_frame(0x1, R"({"type":"list_)");
  first[0] = 0x01;  // not final
  std::string middle = masked_frame(0x0, R"(sessions","id)");
  middle[0] = 0x00;
  std::string last = masked_frame(0x0, R"(":"frag"})");
  ASSERT_TRUE(s.send_all(first + masked_frame(0x9, "mid") + middle + last));
  in.clear();
  EXPECT_EQ(s.read_until(in, [](const std::string& b) { return has_frame(b, 0x1, "\"frag\""); }),
            RawSocket::ReadEnd::data);
  EXPECT_TRUE(has_frame(in, 0xA, "mid"));
}

TEST(WebSocket, BrokenFramingGetsProtocolError1002) {
  Daemon d;
  RawSocket s = ready_raw_client(d.port());
  std::string unmasked = "\x81\x02hi";
  ASSERT_TRUE(s.send_all(unmasked));
  std::string in;
  s.read_until(in, [](const std::string& b) { return find_close_code(b).has_value(); });
  EXPECT_EQ(find_close_code(in), 1002);
  EXPECT_TRUE(s.closed_by_peer());
  WsClient c(d.port());
  EXPECT_TRUE(c.next());
}

TEST(WebSocket, AnUpgradeWithTheWrongVersionOrNoKeyIsRefused) {
  Daemon d;
  auto answer = [&](const std::string& headers) {
    RawSocket s(d.port());
    s.send_all("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
               headers + "\r\n");
    std::string in;
    s.read_until(in, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; });
    return in;
  };
  auto old = answer("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n");
  EXPECT_EQ(old.rfind("HTTP/1.1 426", 0), 0u) << old;
  EXPECT_NE(old.find("Sec-WebSocket-Version: 13"), std::string::npos) << old;
  auto keyless = answer("Sec-WebSocket-Version: 13\r\n");
  EXPECT_EQ(keyless.rfind("HTTP/1.1 400", 0), 0u) << keyless;
  auto ok = answer("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 101", 0), 0u) << ok;
  EXPECT_NE(ok.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << ok;
}
