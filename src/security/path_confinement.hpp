#pragma once
// Which filesystem paths a client may name (DESIGN §5 "cwd and session paths are confined to
// configured roots"): a session's cwd and every file path a command hands to the agent
// (session files, export targets). A path is accepted only if it resolves -- realpath, every
// symlink followed -- inside one of the workspace roots. Inside the state directory only one
// part is open to clients: <state>/sessions/<id>/ of a session the asker may see; the rest of
// it (the daemon's own data, the shared pi agent dir with provider credentials) never is.
//
// What this does not stop: the agent itself. pi's tools (bash, write, edit) run as the
// daemon's user and can reach any file that user can; confinement is about what a client can
// make the daemon or pi open by naming a path, not a sandbox (docs/security.md).
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pi_server/result.hpp"

namespace pi_server::security {

class PathConfinement {
 public:
  // `roots`: the directories paths must resolve into (each resolved at every check, so a root
  // that is a symlink, or is created later, works). `state_dir`: the daemon's state dir, whose
  // `sessions/<id>/` folders belong to one session each. Either may be empty.
  PathConfinement(std::vector<std::filesystem::path> roots, std::filesystem::path state_dir);

  // May the asker enter `folder` under <state>/sessions/ (a session's folder: its id, or
  // the pool's name when the session took a pooled agent)?
  using SessionDirAccess = std::function<bool(std::string_view folder)>;

  // Resolves `path` (relative paths against `base`, which must be absolute) to the canonical
  // absolute path the caller must use from then on (so the file opened is the one checked).
  // Components that do not exist yet are kept as written after the deepest existing
  // directory; a `..` among them is refused. Fails with:
  //   invalid_command  empty, a NUL byte, longer than PATH_MAX, or relative with no base;
  //   forbidden        outside every root, or in the state dir outside an accessible
  //                    session folder.
  // The message names the path as given, never the resolved target (no probing of what a
  // symlink points at).
  Result<std::filesystem::path> resolve(std::string_view path, const std::filesystem::path& base,
                                        const SessionDirAccess& may_enter) const;

  // The configured roots, as given.
  const std::vector<std::filesystem::path>& roots() const { return roots_; }

 private:
  std::vector<std::filesystem::path> roots_;
  std::filesystem::path state_dir_;
};

// The cwd a pi session file's header names, read the way pi reads it when it switches to the
// file (pi moves the agent there): within the first MiB, the first line that parses as JSON
// decides; a `{"type":"session","id":...}` object gives its "cwd" string, anything else gives
// none (pi then keeps its own cwd). nullopt also when the file does not exist (pi starts a new
// session in its cwd). Fails (forbidden) when no line decides within the first MiB (pi would
// then read the whole file). Reads at most 1 MiB, on the caller's thread.
Result<std::optional<std::string>> session_file_cwd(const std::filesystem::path& file);

// True if `path` is `dir` or below it, comparing whole components (/work/root2 is not below
// /work/root). Both must be normalized absolute paths.
bool is_within(const std::filesystem::path& path, const std::filesystem::path& dir);

}  // namespace pi_server::security
