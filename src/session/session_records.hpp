#pragma once
// The stored side of the sessions (DESIGN §11 "Persistence"): one row per session (id,
// owner, cwd, pi session file, model, name, times, state, sessionVersion), written through
// the Store whenever the session changes, and read back for list_stored_sessions,
// load_session and --resume-sessions. Keeps the rows in memory too, so reads never touch
// the disk on the loop.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "persistence/store.hpp"
#include "session/session.hpp"

namespace pi_server::session {

class SessionRecords {
 public:
  // `store` may be null: nothing is stored, nothing is found.
  explicit SessionRecords(persistence::Store* store);

  // The row of `session` as it is now, state "active" (created, loaded, changed).
  void save(const Session& session);
  // Deleted without purge: stays loadable, not resumed at start.
  void mark_stopped(const std::string& session_id);
  // Purged: the row is gone.
  void forget(const std::string& session_id);

  const persistence::StoredSession* find(const std::string& session_id) const;
  // Rows of `owner`, oldest first.
  std::vector<const persistence::StoredSession*> owned_by(const std::string& owner) const;
  // Rows in state "active" (for --resume-sessions), oldest first.
  std::vector<persistence::StoredSession> active() const;

  // The launch settings that bring a stored session back.
  static agent::SessionLaunch launch_of(const persistence::StoredSession& row);
  // {sessionId, name?, cwd, model, sessionFile, createdAt, lastActivityAt, state,
  // sessionVersion} (list_stored_sessions).
  static nlohmann::json to_json(const persistence::StoredSession& row);

 private:
  void write(const persistence::StoredSession& row);

  persistence::Store* store_;
  std::map<std::string, persistence::StoredSession> rows_;
};

}  // namespace pi_server::session
