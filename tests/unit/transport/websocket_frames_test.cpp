// RFC 6455 framing (src/transport/websocket_frames.*): the parser against hand-built client
// frames, split at every byte; the accept key against the RFC's own example; UTF-8 rules.
#include "transport/websocket_frames.hpp"

#include "protocol/json_scan.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace pi_server::transport::ws;

namespace {

// A masked client frame.
std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         std::array<std::uint8_t, 4> mask = {0x11, 0x22, 0x33, 0x44},
                         std::uint8_t rsv = 0) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  std::size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((std::uint64_t(n) >> (8 * i)) & 0xFF));
  }
  for (auto b : mask) out.push_back(static_cast<char>(b));
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return out;
}

struct Recorder : FrameSink {
  std::vector<std::string> events;
  void on_message(Opcode op, std::string_view p) override {
    events.push_back((op == Opcode::text ? "text:" : "binary:") + std::string(p));
  }
  void on_ping(std::string_view p) override { events.push_back("ping:" + std::string(p)); }
  void on_pong(std::string_view p) override { events.push_back("pong:" + std::string(p)); }
  void on_close(std::optional<std::uint16_t> code, std::string_view reason) override {
    events.push_back("close:" + (code ? std::to_string(*code) : std::string("none")) + ":" +
                     std::string(reason));
  }
  void on_protocol_error(std::uint16_t code, const char*) override {
    events.push_back("error:" + std::to_string(code));
  }
};

// Feeds `wire` in pieces of `step` bytes (0: all at once).
std::vector<std::string> parse(std::string wire, std::size_t step = 0, std::uint64_t max = 1 << 20) {
  FrameParser parser(max);
  Recorder r;
  if (step == 0) step = wire.size() ? wire.size() : 1;
  for (std::size_t at = 0; at < wire.size(); at += step) {
    std::string piece = wire.substr(at, step);
    if (!parser.feed(piece.data(), piece.size(), r)) break;
  }
  return r.events;
}

}  // namespace

TEST(WebSocketFrames, AcceptKeyIsTheRfcExample) {
  // RFC 6455 §1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(plausible_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(plausible_client_key(""));
  EXPECT_FALSE(plausible_client_key("dGhlIHNhbXBsZSBub25jZQ"));
  EXPECT_FALSE(plausible_client_key("dGhlIHNhbXBsZSBub25j!Q=="));
}

TEST(WebSocketFrames, ServerFrameHeadersUseTheShortestLength) {
  EXPECT_EQ(frame_header(Opcode::text, 5).view(), std::string("\x81\x05", 2));
  EXPECT_EQ(frame_header(Opcode::text, 126).view(), std::string("\x81\x7E\x00\x7E", 4));
  EXPECT_EQ(frame_header(Opcode::text, 70000).view(),
            std::string("\x81\x7F\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  EXPECT_EQ(close_frame(1009), std::string("\x88\x02\x03\xF1", 4));
  EXPECT_EQ(close_frame(std::nullopt), std::string("\x88\x00", 2));
  EXPECT_EQ(control_frame(Opcode::pong, std::string(200, 'x')).size(), 2u + 125u);
}

TEST(WebSocketFrames, MessagesArriveWholeHoweverTheBytesAreSplit) {
  std::string big(70000, 'b');
  std::string wire = client_frame(0x1, "hello") + client_frame(0x9, "hb") +
                     client_frame(0x1, "frag", false) + client_frame(0xA, "") +
                     client_frame(0x0, "men", false) + client_frame(0x0, "ted") +
                     client_frame(0x2, "\x01\x02") + client_frame(0x1, big) +
                     client_frame(0x1, "") + client_frame(0x8, "\x03\xE8" "bye");
  std::vector<std::string> want = {"text:hello", "ping:hb", "pong:",     "text:fragmented",
                                   "binary:\x01\x02", "text:" + big, "text:", "close:1000:bye"};
  for (std::size_t step : {0, 1, 2, 3, 7, 13, 4096}) {
    SCOPED_TRACE(step);
    EXPECT_EQ(parse(wire, step), want);
  }
}

TEST(WebSocketFrames, NothingIsParsedAfterTheClose) {
  EXPECT_EQ(parse(client_frame(0x8, "") + client_frame(0x1, "late")),
            (std::vector<std::string>{"close:none:"}));
}

TEST(WebSocketFrames, BrokenFramingFailsWith1002) {
  std::string unmasked = "\x81\x02hi";
  EXPECT_EQ(parse(unmasked), (std::vector<std::string>{"error:1002"}));
  EXPECT_EQ(parse(client_frame(0x1, "x", true, {1, 2, 3, 4}, 0x40)), (std::vector<std::string>{"error:1002"}))
      << "RSV1 without a negotiated extension";
  EXPECT_EQ(parse(client_frame(0x3, "x")), (std::vector<std::string>{"error:1002"})) << "opcode 3";
  EXPECT_EQ(parse(client_frame(0x0, "x")), (std::vector<std::string>{"error:1002"}))
      << "continuation without a message";
  EXPECT_EQ(parse(client_frame(0x1, "a", false) + client_frame(0x1, "b")),
            (std::vector<std::string>{"error:1002"}))
      << "a new message inside a fragmented one";
  EXPECT_EQ(parse(client_frame(0x9, "p", false)), (std::vector<std::string>{"error:1002"}))
      << "fragmented control frame";
  EXPECT_EQ(parse(client_frame(0x9, std::string(126, 'p'))), (std::vector<std::string>{"error:1002"}))
      << "control frame over 125 bytes";
  EXPECT_EQ(parse(client_frame(0x8, "\x03")), (std::vector<std::string>{"error:1002"}))
      << "close frame with one byte";
  for (std::uint16_t code : {999, 1004, 1005, 1006, 1015, 2999, 5000, 65535}) {
    SCOPED_TRACE(code);
    std::string payload = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    EXPECT_EQ(parse(client_frame(0x8, payload)), (std::vector<std::string>{"error:1002"}));
  }
  std::string top_bit("\x81\xFF\x80\x00\x00\x00\x00\x00\x00\x01" "abcd", 14);
  EXPECT_EQ(parse(top_bit), (std::vector<std::string>{"error:1002"}));
  // Lengths not in their shortest form (RFC 6455 §5.2).
  std::string long16("\x81\xFE\x00\x05" "abcd" "hello", 13);
  EXPECT_EQ(parse(long16), (std::vector<std::string>{"error:1002"}));
  std::string long64("\x81\xFF\x00\x00\x00\x00\x00\x00\x00\x7E" "abcd", 14);
  EXPECT_EQ(parse(long64), (std::vector<std::string>{"error:1002"}));
}

TEST(WebSocketFrames, TooBigIsRefusedAtTheHeader) {
  // The header alone announces it: no payload needed.
  std::string header = client_frame(0x1, std::string(2000, 'x')).substr(0, 8);
  EXPECT_EQ(parse(header, 0, 1024), (std::vector<std::string>{"error:1009"}));
  // Fragments count together.
  EXPECT_EQ(parse(client_frame(0x1, std::string(600, 'x'), false) + client_frame(0x0, std::string(600, 'y')), 0, 1024),
            (std::vector<std::string>{"error:1009"}));
  EXPECT_EQ(parse(client_frame(0x1, std::string(1024, 'x')), 0, 1024).size(), 1u);
}

TEST(WebSocketFrames, TextMustBeUtf8) {
  EXPECT_EQ(parse(client_frame(0x1, "{\"x\":\"\xff\xfe\"}")), (std::vector<std::string>{"error:1007"}));
  // Split inside a code point across fragments is fine.
  EXPECT_EQ(parse(client_frame(0x1, "\xE2\x82", false) + client_frame(0x0, "\xAC")),
            (std::vector<std::string>{"text:\xE2\x82\xAC"}));
  EXPECT_EQ(parse(client_frame(0x8, "\x03\xE8\xC0\xAF")), (std::vector<std::string>{"error:1007"}))
      << "close reason";
  EXPECT_EQ(parse(client_frame(0x2, "\xff")), (std::vector<std::string>{"binary:\xff"}));
}

TEST(WebSocketFrames, Utf8Rules) {
  EXPECT_TRUE(pi_server::protocol::is_valid_utf8(""));
  EXPECT_TRUE(pi_server::protocol::is_valid_utf8("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(pi_server::protocol::is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_TRUE(pi_server::protocol::is_valid_utf8("\xF4\x8F\xBF\xBF"));                      // U+10FFFF
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("\xC0\xAF"));          // overlong /
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("\x80"));
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("abc\xE2\x82"));  // cut short
  EXPECT_FALSE(pi_server::protocol::is_valid_utf8("abcdefgh\xE2\x28\xA1"));
}

TEST(WebSocketFrames, AWholeMessageInOneReadIsNotCopiedAndNothingIsKept) {
  FrameParser parser(1 << 20);
  Recorder r;
  std::string wire = client_frame(0x1, std::string(5000, 'a'));
  parser.feed(wire.data(), wire.size(), r);
  EXPECT_EQ(parser.buffered(), 0u);
  std::string first = client_frame(0x1, std::string(5000, 'a')).substr(0, 3000);
  parser.feed(first.data(), first.size(), r);
  EXPECT_GT(parser.buffered(), 0u) << "a message spread over reads is gathered";
  std::string rest = client_frame(0x1, std::string(5000, 'a')).substr(3000);
  parser.feed(rest.data(), rest.size(), r);
  EXPECT_EQ(parser.buffered(), 0u) << "and released once delivered";
  EXPECT_EQ(r.events.size(), 2u);
}
