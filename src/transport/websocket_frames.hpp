#pragma once
// RFC 6455 framing, server side, without I/O: the opening handshake's accept key, the
// frames the daemon sends, and an incremental parser for what a client sends. The
// connection (websocket_connection_impl.hpp) owns the socket; this owns the rules.
//
// Why not Beast's websocket::stream: it keeps a 1.5 KB read buffer inside every stream and
// needs a prepared message buffer and a pending read operation per connection, ~8 KB for an
// idle socket (docs/benchmarks.md, "Idle connections"). This parser holds ~40 bytes while
// no message is under way, so an idle connection costs its socket and little else.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pi_server::transport::ws {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// Close codes the daemon sends.
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseBadPayload = 1007;  // text that is not UTF-8
inline constexpr std::uint16_t kCloseTooBig = 1009;

// RFC 6455 §7.4: the codes a close frame may carry (1000-1003, 1007-1011, the registered
// 1012/1013, 3000-4999). Others fail the connection with 1002.
bool valid_close_code(std::uint16_t code);

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + RFC GUID)).
std::string accept_key(std::string_view client_key);
// A Sec-WebSocket-Key is the base64 of 16 bytes: 24 characters ending in "==".
bool plausible_client_key(std::string_view key);

// The header of an unmasked, final server frame carrying `payload_size` bytes (2, 4 or 10
// bytes long); the payload follows it on the wire as is.
struct FrameHeader {
  std::array<char, 10> bytes{};
  std::size_t size = 0;
  std::string_view view() const { return {bytes.data(), size}; }
};
FrameHeader frame_header(Opcode opcode, std::uint64_t payload_size);
// A whole control frame (payload at most 125 bytes; longer is cut).
std::string control_frame(Opcode opcode, std::string_view payload);
// A close frame with `code` (none: an empty close frame).
std::string close_frame(std::optional<std::uint16_t> code);

// What the parser found, in wire order.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // A whole data message. `text` messages are valid UTF-8 (protocol::is_valid_utf8). The view is valid only during
  // the call (it may point into the caller's read buffer).
  virtual void on_message(Opcode opcode, std::string_view payload) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // The peer's close frame; `code` is absent when it carried none. Nothing is parsed after.
  virtual void on_close(std::optional<std::uint16_t> code, std::string_view reason) = 0;
  // The peer broke the protocol: fail the connection with `close_code`. Nothing is parsed
  // after.
  virtual void on_protocol_error(std::uint16_t close_code, const char* why) = 0;
};

// Incremental parser of client frames. feed() takes whatever a read returned (any split);
// payload is unmasked in place. A message that arrives whole in one read is handed over
// from the read buffer without a copy; only a message spread over reads or frames is
// gathered, in a buffer released as soon as it is delivered.
class FrameParser {
 public:
  explicit FrameParser(std::uint64_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Parses `data` (modified: unmasked). Returns false once a close frame or a protocol error
  // was reported: the rest of the input is not looked at, now or later.
  bool feed(char* data, std::size_t size, FrameSink& sink);

  bool finished() const { return finished_; }
  // Heap bytes held for a message under way (0 between messages).
  std::size_t buffered() const {
    return message_.capacity() == std::string().capacity() ? 0 : message_.capacity();
  }

 private:
  // Header bytes still needed (0: complete), from what has arrived so far.
  std::size_t header_missing() const;
  // The header is complete: check it and set up the payload. False on a protocol error.
  bool begin_frame(FrameSink& sink);
  // The current frame's payload is complete (`in_place`: all of it at `data`).
  void end_frame(const char* in_place, FrameSink& sink);
  void fail(FrameSink& sink, std::uint16_t code, const char* why);

  std::uint64_t max_message_;
  std::array<std::uint8_t, 14> header_{};
  std::uint8_t header_size_ = 0;
  bool in_header_ = true;
  bool finished_ = false;
  bool fin_ = false;
  Opcode opcode_ = Opcode::continuation;
  // The data message under way (continuation frames add to it), or continuation: none.
  Opcode message_opcode_ = Opcode::continuation;
  std::array<std::uint8_t, 4> mask_{};
  std::uint8_t mask_offset_ = 0;
  std::uint64_t remaining_ = 0;     // payload bytes of the current frame still to come
  std::uint64_t frame_size_ = 0;    // payload bytes of the current frame
  std::uint64_t message_size_ = 0;  // payload bytes of the message so far
  std::string message_;             // gathered message (only when it spans reads/frames)
  std::string control_;             // a control frame's payload (at most 125 bytes)
};

}  // namespace pi_server::transport::ws
