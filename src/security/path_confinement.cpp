#include "security/path_confinement.hpp"

#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>

namespace pi_server::security {
namespace fs = std::filesystem;

namespace {

// realpath(3) of an existing path; nullopt when it does not exist (or cannot be read).
std::optional<fs::path> real_path(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::canonical(p, ec);
  if (ec) return std::nullopt;
  return r;
}

// The canonical form of `p`: realpath of its deepest existing ancestor, then the rest as
// written. Components that do not exist cannot be symlinks, so this is where the kernel
// would land once they are created; a `..` among them could climb out of the resolved part,
// so it is refused (nullopt).
std::optional<fs::path> resolve_partly(const fs::path& p) {
  if (auto whole = real_path(p)) return whole;
  fs::path existing = p;
  std::vector<fs::path> missing;
  while (true) {
    if (!existing.has_relative_path()) return std::nullopt;  // not even "/" resolved
    missing.push_back(existing.filename());
    existing = existing.parent_path();
    if (auto base = real_path(existing)) {
      fs::path out = *base;
      for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (*it == "..") return std::nullopt;
        if (it->empty() || *it == ".") continue;
        out /= *it;
      }
      return out;
    }
  }
}

Status forbidden(std::string_view path, std::string_view why) {
  return Status::error(ErrorCode::forbidden, "Path '" + std::string(path) + "' " + std::string(why));
}

}  // namespace

bool is_within(const fs::path& path, const fs::path& dir) {
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
    if (d->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *d) return false;
  }
  return true;
}

PathConfinement::PathConfinement(std::vector<fs::path> roots, fs::path state_dir)
    : roots_(std::move(roots)), state_dir_(std::move(state_dir)) {}

Result<fs::path> PathConfinement::resolve(std::string_view text, const fs::path& base,
                                          const SessionDirAccess& may_enter) const {
  if (text.empty()) return Status::error(ErrorCode::invalid_command, "The path is empty");
  if (text.find('\0') != std::string_view::npos)
    return Status::error(ErrorCode::invalid_command, "The path contains a NUL byte");
  if (text.size() >= PATH_MAX)
    return Status::error(ErrorCode::invalid_command, "The path is longer than PATH_MAX");
  fs::path p(text);
  if (p.is_relative()) {
    if (base.empty() || base.is_relative())
      return Status::error(ErrorCode::invalid_command,
                           "Path '" + std::string(text) + "' must be absolute");
    p = base / p;
  }
  auto resolved = resolve_partly(p);
  if (!resolved) return forbidden(text, "names '..' below a directory that does not exist");

  bool inside = false;
  // A root below the state dir (the service's default <state>/workspace) is the operator's
  // choice: the state-dir rule does not close it (unless it is in the sessions' folders).
  bool in_root_below_state = false;
  auto state = state_dir_.empty() ? std::nullopt : real_path(state_dir_);
  for (const auto& root : roots_) {
    auto r = real_path(root);
    if (r && is_within(*resolved, *r)) {
      inside = true;
      if (state && *r != *state && is_within(*r, *state) && !is_within(*r, *state / "sessions"))
        in_root_below_state = true;
    }
  }
  if (!inside) return forbidden(text, "is outside every workspace root (--workspace-root)");

  if (state && !in_root_below_state) {
    if (is_within(*resolved, *state)) {
      // Only <state>/sessions/<id>/..., and only for who may see session <id>.
      fs::path sessions = *state / "sessions";
      auto rel = resolved->lexically_relative(sessions);
      bool in_session_dir = is_within(*resolved, sessions) && !rel.empty() && *rel.begin() != "." &&
                            *rel.begin() != "..";
      if (!in_session_dir || !may_enter || !may_enter(rel.begin()->string()))
        return forbidden(text, "is in the daemon's state directory, outside your sessions' folders");
    }
  }
  return *resolved;
}

Result<std::optional<std::string>> session_file_cwd(const fs::path& file) {
  // pi's readSessionHeader: MAX_SESSION_HEADER_SCAN_BYTES = 1 MiB.
  constexpr std::size_t kScanBytes = 1u << 20;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::optional<std::string>();
  std::ifstream in(file, std::ios::binary);
  std::string text(kScanBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  bool whole_file = text.size() <= kScanBytes;
  if (!whole_file) text.resize(kScanBytes);
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos && !whole_file) break;  // a line cut at the scan limit
    std::string_view line(text.data() + start, (end == std::string::npos ? text.size() : end) - start);
    start = end == std::string::npos ? text.size() + 1 : end + 1;
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (entry.is_discarded() || entry.is_null()) continue;  // blank or malformed: pi skips it
    if (!entry.is_object() || entry.value("type", "") != "session" || !entry.contains("id") ||
        !entry["id"].is_string())
      return std::optional<std::string>();
    auto cwd = entry.find("cwd");
    if (cwd == entry.end() || !cwd->is_string()) return std::optional<std::string>();
    return std::optional<std::string>(cwd->get<std::string>());
  }
  if (whole_file) return std::optional<std::string>();
  return Status::error(ErrorCode::forbidden,
                       "The session file has no header within its first MiB");
}

}  // namespace pi_server::security
