#include "protocol/json_scan.hpp"

#include <cstdint>
#include <cstring>

namespace pi_server::protocol {
namespace {

constexpr bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_space(std::string_view s, std::size_t i) {
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

// i at an opening quote; returns the index after the closing quote, or npos.
std::size_t skip_string(std::string_view s, std::size_t i) {
  ++i;
  while (i < s.size()) {
    // memchr-style scan for the next quote or backslash keeps long strings fast.
    const char* base = s.data() + i;
    std::size_t left = s.size() - i;
    const void* q = std::memchr(base, '"', left);
    if (!q) return std::string_view::npos;
    std::size_t quote = static_cast<const char*>(q) - s.data();
    const void* b = std::memchr(base, '\\', quote - i);
    if (!b) return quote + 1;
    i = static_cast<std::size_t>(static_cast<const char*>(b) - s.data()) + 2;
  }
  return std::string_view::npos;
}

// i at the first byte of a value; returns the index after it, or npos.
std::size_t skip_value(std::string_view s, std::size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  char c = s[i];
  if (c == '"') return skip_string(s, i);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (i < s.size()) {
      char d = s[i];
      if (d == '"') {
        i = skip_string(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (d == '{' || d == '[') ++depth;
      if (d == '}' || d == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  // number, true, false, null
  std::size_t start = i;
  while (i < s.size() && !is_space(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i == start ? std::string_view::npos : i;
}

}  // namespace

bool scan_object(std::string_view s,
                 const std::function<bool(std::string_view, std::string_view)>& visit) {
  std::size_t i = skip_space(s, 0);
  if (i >= s.size() || s[i] != '{') return false;
  i = skip_space(s, i + 1);
  if (i < s.size() && s[i] == '}') return skip_space(s, i + 1) == s.size();
  bool stopped = false;
  while (i < s.size()) {
    if (s[i] != '"') return false;
    std::size_t key_end = skip_string(s, i);
    if (key_end == std::string_view::npos) return false;
    std::string_view key = s.substr(i + 1, key_end - i - 2);
    i = skip_space(s, key_end);
    if (i >= s.size() || s[i] != ':') return false;
    i = skip_space(s, i + 1);
    std::size_t value_end = skip_value(s, i);
    if (value_end == std::string_view::npos) return false;
    if (!stopped && !visit(key, s.substr(i, value_end - i))) stopped = true;
    i = skip_space(s, value_end);
    if (i >= s.size()) return false;
    if (s[i] == '}') return skip_space(s, i + 1) == s.size();
    if (s[i] != ',') return false;
    i = skip_space(s, i + 1);
  }
  return false;
}

std::optional<std::string_view> simple_string(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') return std::nullopt;
  std::string_view inner = raw.substr(1, raw.size() - 2);
  if (inner.find('\\') != std::string_view::npos) return std::nullopt;
  return inner;
}

bool nests_deeper_than(std::string_view s, std::size_t limit) {
  std::size_t depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      i = skip_string(s, i);
      if (i == std::string_view::npos) return false;  // malformed: the parser will say so
      --i;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

namespace {
// Length of the well-formed UTF-8 sequence at p (1-4), or 0 if it is not one.
int utf8_sequence_length(const unsigned char* p, const unsigned char* end) {
  unsigned char c = *p;
  if (c < 0x80) return 1;
  int len;
  std::uint32_t cp;
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
  else return 0;
  if (end - p < len) return 0;
  for (int i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}
}  // namespace

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    int len = utf8_sequence_length(p, end);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++p;
    } else {
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
      p += len;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    // Fast path: eight ASCII bytes at a time.
    if (end - p >= 8) {
      std::uint64_t chunk;
      std::memcpy(&chunk, p, 8);
      if ((chunk & 0x8080808080808080ull) == 0) {
        p += 8;
        continue;
      }
    }
    int len = utf8_sequence_length(p, end);
    if (len == 0) return false;
    p += len;
  }
  return true;
}

AgentLineHead scan_agent_line(std::string_view line) {
  AgentLineHead head;
  head.is_object = scan_object(line, [&](std::string_view key, std::string_view value) {
    if (key == "type") {
      // Like a JSON parser, the last duplicate wins, whatever its type.
      auto t = simple_string(value);
      head.type = t ? *t : std::string_view{};
    } else if (key == "id") {
      head.raw_id = value;
    }
    return true;
  });
  if (!head.is_object) head = AgentLineHead{};
  return head;
}

}  // namespace pi_server::protocol
