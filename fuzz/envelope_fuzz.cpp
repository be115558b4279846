// The inbound command parser (simdjson DOM reader, command-table checks). Property: parsing
// any bytes never throws or crashes; an accepted envelope always has a type, ids within
// their bound, and its agent-bound line is JSON without envelope-only fields; peeking at a
// member without parsing never crashes either.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/envelope.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto id = pi_server::protocol::peek_string_member(text, "id");
      id && id->size() > pi_server::protocol::kMaxIdBytes)
    std::abort();
  auto r = pi_server::protocol::parse_envelope(text);
  if (!r) {
    if (r.failure().message.empty()) std::abort();
    return 0;
  }
  if (r->type.empty()) std::abort();
  if (r->id && r->id->size() > pi_server::protocol::kMaxIdBytes) std::abort();
  if (!r->is_server_command()) {
    auto cmd = nlohmann::json::parse(pi_server::protocol::agent_command_line(r.value(), "x"));
    if (cmd.contains("sessionId") || cmd.contains("idempotencyKey") || cmd["id"] != "x") std::abort();
  }
  return 0;
}
