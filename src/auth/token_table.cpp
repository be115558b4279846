#include "auth/token_table.hpp"

#include <fstream>
#include <sstream>

namespace pi_server::auth {

namespace {
constexpr std::string_view kHashedPrefix = "sha256:";

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}
}  // namespace

Result<TokenTable> TokenTable::parse(std::string_view text) {
  TokenTable table;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto fields = split_fields(line);
    if (fields.empty()) continue;
    auto where = "line " + std::to_string(line_no) + ": ";
    if (fields.size() < 2) return Status::error(where + "want TOKEN PRINCIPAL [admin]");
    if (fields.size() > 3) return Status::error(where + "too many fields (want TOKEN PRINCIPAL [admin])");
    if (fields.size() == 3 && fields[2] != "admin")
      return Status::error(where + "third field must be 'admin'");
    Entry entry;
    std::string_view token = fields[0];
    if (token.substr(0, kHashedPrefix.size()) == kHashedPrefix) {
      auto digest = parse_sha256_hex(token.substr(kHashedPrefix.size()));
      if (!digest) return Status::error(where + "sha256: must be followed by 64 hex digits");
      entry.digest = *digest;
    } else {
      entry.digest = sha256(token);
    }
    entry.principal = Principal{std::string(fields[1]), fields.size() == 3};
    for (const auto& other : table.entries_)
      if (other.digest == entry.digest) return Status::error(where + "the same token appears twice");
    table.entries_.push_back(std::move(entry));
  }
  return table;
}

Result<TokenTable> TokenTable::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read token file " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = parse(text.str());
  if (!parsed) return Status::error("token file " + path.string() + ": " + parsed.error());
  return parsed;
}

std::optional<Principal> TokenTable::find(std::string_view token) const {
  auto digest = sha256(token);
  // Every entry is compared, whatever matched: the time says nothing about which.
  const Entry* match = nullptr;
  for (const auto& entry : entries_)
    if (constant_time_equal(entry.digest, digest)) match = &entry;
  if (!match) return std::nullopt;
  return match->principal;
}

}  // namespace pi_server::auth
