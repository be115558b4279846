#include "session/session_records.hpp"

#include <algorithm>
#include <ctime>

namespace pi_server::session {
using persistence::StoredSession;

namespace {

std::int64_t epoch_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string iso_time_ms(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

SessionRecords::SessionRecords(persistence::Store* store) : store_(store) {
  if (!store_) return;
  for (auto& row : store_->load_sessions()) {
    std::string id = row.id;
    rows_.emplace(std::move(id), std::move(row));
  }
}

void SessionRecords::write(const StoredSession& row) {
  rows_[row.id] = row;
  store_->save_session(row);
}

void SessionRecords::save(const Session& session) {
  if (!store_) return;
  const auto& launch = session.launch();
  StoredSession row;
  row.id = session.id();
  row.owner = launch.owner;
  row.cwd = launch.cwd;
  row.session_file = launch.session_file.string();
  row.model = launch.model;
  row.name = launch.name;
  row.thinking_level = launch.thinking_level;
  row.created_at_ms = epoch_ms(session.created_at());
  row.last_active_at_ms = epoch_ms(session.last_activity_at());
  row.state = "active";
  row.session_version = session.version();
  write(row);
}

void SessionRecords::mark_stopped(const std::string& session_id) {
  auto it = rows_.find(session_id);
  if (!store_ || it == rows_.end()) return;
  it->second.state = "stopped";
  store_->save_session(it->second);
}

void SessionRecords::forget(const std::string& session_id) {
  if (!store_) return;
  rows_.erase(session_id);
  store_->remove_session(session_id);
}

const StoredSession* SessionRecords::find(const std::string& session_id) const {
  auto it = rows_.find(session_id);
  return it == rows_.end() ? nullptr : &it->second;
}

std::vector<const StoredSession*> SessionRecords::owned_by(const std::string& owner) const {
  std::vector<const StoredSession*> out;
  for (const auto& [id, row] : rows_)
    if (row.owner == owner) out.push_back(&row);
  std::stable_sort(out.begin(), out.end(), [](const auto* a, const auto* b) {
    return a->created_at_ms < b->created_at_ms;
  });
  return out;
}

std::vector<StoredSession> SessionRecords::active() const {
  std::vector<StoredSession> out;
  for (const auto& [id, row] : rows_)
    if (row.state == "active") out.push_back(row);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_at_ms < b.created_at_ms;
  });
  return out;
}

agent::SessionLaunch SessionRecords::launch_of(const StoredSession& row) {
  agent::SessionLaunch launch;
  launch.cwd = row.cwd;
  launch.model = row.model;
  launch.name = row.name;
  launch.thinking_level = row.thinking_level;
  launch.session_file = row.session_file;
  launch.owner = row.owner;
  return launch;
}

nlohmann::json SessionRecords::to_json(const StoredSession& row) {
  nlohmann::json j = {{"sessionId", row.id},
                      {"cwd", row.cwd},
                      {"model", row.model},
                      {"sessionFile", row.session_file},
                      {"createdAt", iso_time_ms(row.created_at_ms)},
                      {"lastActivityAt", iso_time_ms(row.last_active_at_ms)},
                      {"state", row.state},
                      {"sessionVersion", row.session_version}};
  if (!row.name.empty()) j["name"] = row.name;
  return j;
}

}  // namespace pi_server::session
