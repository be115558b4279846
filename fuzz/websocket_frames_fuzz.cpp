// Property: the WebSocket frame parser gives the same events for the input fed whole and fed
// in chunks chosen by the input itself; no message exceeds the limit; every text message is
// UTF-8; nothing is reported after a close or a protocol error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/json_scan.hpp"
#include "transport/websocket_frames.hpp"

namespace {
using namespace pi_server::transport::ws;

struct Collect : FrameSink {
  std::uint64_t max;
  std::vector<std::string> events;
  bool ended = false;
  explicit Collect(std::uint64_t m) : max(m) {}
  void note(std::string e) {
    if (ended) std::abort();
    events.push_back(std::move(e));
  }
  void on_message(Opcode op, std::string_view p) override {
    if (p.size() > max) std::abort();
    if (op == Opcode::text && !pi_server::protocol::is_valid_utf8(p)) std::abort();
    note(std::to_string(static_cast<int>(op)) + ":" + std::string(p));
  }
  void on_ping(std::string_view p) override { note("ping:" + std::string(p)); }
  void on_pong(std::string_view p) override { note("pong:" + std::string(p)); }
  void on_close(std::optional<std::uint16_t> code, std::string_view r) override {
    if (code && !valid_close_code(*code)) std::abort();
    note("close:" + std::to_string(code.value_or(0)) + std::string(r));
    ended = true;
  }
  void on_protocol_error(std::uint16_t code, const char*) override {
    note("error:" + std::to_string(code));
    ended = true;
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::uint64_t max = 1 + data[0] * 16;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  FrameParser whole(max), chunked(max);
  Collect a(max), b(max);
  std::string copy = input;  // the parser unmasks in place
  whole.feed(copy.data(), copy.size(), a);
  std::size_t i = 0, k = 0;
  while (i < input.size()) {
    std::size_t n = 1 + static_cast<unsigned char>(input[k++ % input.size()]) % 17;
    n = std::min(n, input.size() - i);
    std::string piece = input.substr(i, n);
    if (!chunked.feed(piece.data(), piece.size(), b)) break;
    i += n;
  }
  if (a.events != b.events) std::abort();
  return 0;
}
