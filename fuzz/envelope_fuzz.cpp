// Property: parsing any bytes never throws or crashes; an accepted envelope always has a
// type, and its agent-bound form never carries envelope-only fields.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/envelope.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = pi_server::protocol::parse_envelope(text);
  if (!r) {
    if (r.failure().message.empty()) std::abort();
    return 0;
  }
  if (r->type.empty()) std::abort();
  if (!r->is_server_command()) {
    auto cmd = nlohmann::json::parse(pi_server::protocol::agent_command_line(r.value(), "x"));
    if (cmd.contains("sessionId") || cmd.contains("idempotencyKey") || cmd["id"] != "x") std::abort();
  }
  return 0;
}
