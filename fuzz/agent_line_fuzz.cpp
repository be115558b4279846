// Property: the relay's partial scanner agrees with a full JSON parser about which lines are
// objects (it may accept sloppy numbers/literals, never a non-object), and an accepted
// line's "type" matches the parser's.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "protocol/json_scan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto head = pi_server::protocol::scan_agent_line(line);
  // nlohmann stops at a NUL byte as if the input ended there; NUL is not JSON, and the
  // scanner rightly rejects it, so such inputs are not compared (found by this target).
  if (line.find('\0') != std::string_view::npos) return 0;
  auto full = nlohmann::json::parse(line, nullptr, false);
  bool parser_object = !full.is_discarded() && full.is_object();
  if (parser_object && !head.is_object) std::abort();
  // Escaped keys ("t\u0079pe") are not decoded by the scanner: compare only without them.
  bool has_escape = line.find('\\') != std::string_view::npos;
  if (parser_object && head.is_object && !head.type.empty() && !has_escape) {
    auto it = full.find("type");
    // Duplicate keys: nlohmann keeps the last, the scanner the last too.
    if (it == full.end() || !it->is_string() || *it != std::string(head.type)) std::abort();
  }
  return 0;
}
