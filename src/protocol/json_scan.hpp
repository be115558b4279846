#pragma once
// A partial JSON reader for the relay's hot path: it walks the top-level members of one
// object and hands out the raw bytes of each value without building a DOM. Agent events
// are routed on one or two top-level fields ("type", "id"), so every event line is read
// once, this far, and then forwarded byte for byte.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pi_server::protocol {

// Calls visit(raw_key, raw_value) for each top-level member of the object in `text`.
// raw_key is the key without its quotes and still escaped; raw_value is the value's exact
// text (strings keep their quotes). visit returns false to stop early.
// Returns false if `text` is not one well-formed-looking JSON object (this is a structural
// check: brackets, strings and separators, not a full validation of numbers and literals).
bool scan_object(std::string_view text,
                 const std::function<bool(std::string_view, std::string_view)>& visit);

// The contents of a raw JSON string value when it holds no escapes ("abc" -> abc);
// nullopt for any other value or for a string with a backslash.
std::optional<std::string_view> simple_string(std::string_view raw_value);

// True if arrays/objects in `text` nest deeper than `limit` (strings are skipped). Copying or
// dumping a JSON value recurses once per level, so deep input must be refused before that.
bool nests_deeper_than(std::string_view text, std::size_t limit);
inline constexpr std::size_t kMaxJsonDepth = 64;

// True if `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view text);
// A copy of `text` with every byte that is not part of a well-formed UTF-8 sequence
// replaced by U+FFFD. JSON's structural characters are ASCII, so a JSON text stays JSON.
std::string sanitize_utf8(std::string_view text);

// The top-level "type" and "id" of an agent line: what routing needs.
struct AgentLineHead {
  bool is_object = false;
  std::string_view type;    // contents of a simple string "type", else empty
  std::string_view raw_id;  // raw value of "id" if present (any JSON type), else empty
};
AgentLineHead scan_agent_line(std::string_view line);

}  // namespace pi_server::protocol
