#include "transport/websocket_frames.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "protocol/json_scan.hpp"

namespace pi_server::transport::ws {
namespace {

bool is_control(Opcode op) { return static_cast<std::uint8_t>(op) >= 0x8; }

bool known_opcode(std::uint8_t op) {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

void unmask(char* data, std::size_t size, const std::array<std::uint8_t, 4>& mask,
            std::uint8_t& offset) {
  for (std::size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>(static_cast<std::uint8_t>(data[i]) ^ mask[offset]);
    offset = (offset + 1) & 3;
  }
}

}  // namespace

bool valid_close_code(std::uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010:
    case 1011: case 1012: case 1013:
      return true;
    default:
      return false;
  }
}

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(client_key);
  input += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

bool plausible_client_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
  });
}

FrameHeader frame_header(Opcode opcode, std::uint64_t payload_size) {
  FrameHeader h;
  h.bytes[0] = static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));  // FIN
  if (payload_size < 126) {
    h.bytes[1] = static_cast<char>(payload_size);
    h.size = 2;
  } else if (payload_size <= 0xFFFF) {
    h.bytes[1] = 126;
    h.bytes[2] = static_cast<char>(payload_size >> 8);
    h.bytes[3] = static_cast<char>(payload_size & 0xFF);
    h.size = 4;
  } else {
    h.bytes[1] = 127;
    for (int i = 0; i < 8; ++i) h.bytes[2 + i] = static_cast<char>(payload_size >> (56 - 8 * i));
    h.size = 10;
  }
  return h;
}

std::string control_frame(Opcode opcode, std::string_view payload) {
  payload = payload.substr(0, 125);
  std::string out(frame_header(opcode, payload.size()).view());
  out += payload;
  return out;
}

std::string close_frame(std::optional<std::uint16_t> code) {
  if (!code) return control_frame(Opcode::close, {});
  char payload[2] = {static_cast<char>(*code >> 8), static_cast<char>(*code & 0xFF)};
  return control_frame(Opcode::close, std::string_view(payload, 2));
}

// ---------------------------------------------------------------- parser

std::size_t FrameParser::header_missing() const {
  if (header_size_ < 2) return 2 - header_size_;
  std::uint8_t len7 = header_[1] & 0x7F;
  std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((header_[1] & 0x80) ? 4 : 0);
  return need - header_size_;
}

void FrameParser::fail(FrameSink& sink, std::uint16_t code, const char* why) {
  finished_ = true;
  message_ = std::string();
  control_ = std::string();
  sink.on_protocol_error(code, why);
}

bool FrameParser::begin_frame(FrameSink& sink) {
  fin_ = header_[0] & 0x80;
  std::uint8_t raw_opcode = header_[0] & 0x0F;
  if (header_[0] & 0x70) {
    fail(sink, kCloseProtocolError, "reserved bits set (no extension was negotiated)");
    return false;
  }
  if (!known_opcode(raw_opcode)) {
    fail(sink, kCloseProtocolError, "unknown opcode");
    return false;
  }
  if (!(header_[1] & 0x80)) {
    fail(sink, kCloseProtocolError, "a client frame must be masked");
    return false;
  }
  opcode_ = static_cast<Opcode>(raw_opcode);
  std::uint8_t len7 = header_[1] & 0x7F;
  std::size_t at = 2;
  std::uint64_t length = len7;
  if (len7 == 126) {
    length = (std::uint64_t{header_[2]} << 8) | header_[3];
    at = 4;
  } else if (len7 == 127) {
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | header_[2 + i];
    at = 10;
    if (length >> 63) {
      fail(sink, kCloseProtocolError, "payload length with the top bit set");
      return false;
    }
  }
  // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
  if ((len7 == 126 && length < 126) || (len7 == 127 && length <= 0xFFFF)) {
    fail(sink, kCloseProtocolError, "payload length not in its shortest form");
    return false;
  }
  std::copy_n(header_.begin() + at, 4, mask_.begin());
  mask_offset_ = 0;
  if (is_control(opcode_)) {
    if (!fin_ || length > 125) {
      fail(sink, kCloseProtocolError, "a control frame must be final and at most 125 bytes");
      return false;
    }
  } else if (opcode_ == Opcode::continuation) {
    if (message_opcode_ == Opcode::continuation) {
      fail(sink, kCloseProtocolError, "a continuation frame without a message under way");
      return false;
    }
  } else {
    if (message_opcode_ != Opcode::continuation) {
      fail(sink, kCloseProtocolError, "a new message before the previous one ended");
      return false;
    }
    message_opcode_ = opcode_;
  }
  if (!is_control(opcode_) && (length > max_message_ || message_size_ > max_message_ - length)) {
    // Refused at the header, before its payload is read (or buffered).
    fail(sink, kCloseTooBig, "message too big");
    return false;
  }
  frame_size_ = remaining_ = length;
  in_header_ = false;
  return true;
}

void FrameParser::end_frame(const char* in_place, FrameSink& sink) {
  in_header_ = true;
  header_size_ = 0;
  if (is_control(opcode_)) {
    std::string payload = std::move(control_);
    control_.clear();
    switch (opcode_) {
      case Opcode::ping: sink.on_ping(payload); return;
      case Opcode::pong: sink.on_pong(payload); return;
      default: break;
    }
    // close: no payload, or a 2-byte code and a UTF-8 reason.
    if (payload.empty()) {
      finished_ = true;
      return sink.on_close(std::nullopt, {});
    }
    if (payload.size() == 1) return fail(sink, kCloseProtocolError, "a close frame with one byte");
    auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                           static_cast<std::uint8_t>(payload[1]));
    if (!valid_close_code(code)) return fail(sink, kCloseProtocolError, "an invalid close code");
    std::string_view reason = std::string_view(payload).substr(2);
    if (!protocol::is_valid_utf8(reason)) return fail(sink, kCloseBadPayload, "a close reason that is not UTF-8");
    finished_ = true;
    return sink.on_close(code, reason);
  }
  if (!fin_) return;  // more frames of this message follow
  std::string gathered;
  std::string_view payload;
  if (in_place) {
    payload = std::string_view(in_place, frame_size_);
  } else {
    gathered = std::move(message_);
    message_ = std::string();  // an idle connection holds no buffer
    payload = gathered;
  }
  Opcode opcode = message_opcode_;
  message_opcode_ = Opcode::continuation;
  message_size_ = 0;
  if (opcode == Opcode::text && !protocol::is_valid_utf8(payload))
    return fail(sink, kCloseBadPayload, "a text message that is not UTF-8");
  sink.on_message(opcode, payload);
}

bool FrameParser::feed(char* data, std::size_t size, FrameSink& sink) {
  while (!finished_) {
    if (in_header_) {
      if (size == 0) break;
      std::size_t take = std::min(header_missing(), size);
      std::memcpy(header_.data() + header_size_, data, take);
      header_size_ = static_cast<std::uint8_t>(header_size_ + take);
      data += take;
      size -= take;
      if (header_missing() > 0) continue;  // header_missing() grows once byte 2 is known
      if (!begin_frame(sink)) break;
      if (remaining_ == 0) end_frame(nullptr, sink);
      continue;
    }
    if (size == 0) break;
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size));
    unmask(data, take, mask_, mask_offset_);
    remaining_ -= take;
    bool whole_message_here = !is_control(opcode_) && fin_ && message_size_ == 0 &&
                              take == frame_size_;
    if (is_control(opcode_)) {
      control_.append(data, take);
    } else {
      message_size_ += take;
      if (!whole_message_here) message_.append(data, take);
    }
    const char* start = data;
    data += take;
    size -= take;
    if (remaining_ == 0) end_frame(whole_message_here ? start : nullptr, sink);
  }
  return !finished_;
}

}  // namespace pi_server::transport::ws
