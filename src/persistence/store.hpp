#pragma once
// What the daemon keeps across restarts (DESIGN §9, §11 "Persistence"), behind one small
// interface: the stored sessions and the outcome journal. SQLite implements it today
// (sqlite_store.hpp); a shared store (PostgreSQL, Redis) can replace it when several daemons
// serve one fleet (DESIGN §7).
//
// Threads: load_* run once at start, before the loop. Every write is queued from the loop
// thread and applied in the order it was queued; its `durable` callback runs on the loop
// once the write is committed (and synced as far as the store's sync level promises). A
// write that fails is logged and counted; its callback still runs (see store_errors()).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pi_server::persistence {

// One stored session row. Times are milliseconds since the epoch.
struct StoredSession {
  std::string id;
  std::string owner;  // the principal that created it
  std::string cwd;
  std::string session_file;  // pi's .jsonl the agent resumes; empty until known
  std::string model;         // "provider/id"
  std::string name;
  std::string thinking_level;
  std::int64_t created_at_ms = 0;
  std::int64_t last_active_at_ms = 0;
  // "active": running when last seen (--resume-sessions brings it back); "stopped":
  // deleted without purge (load_session brings it back).
  std::string state = "active";
  std::uint64_t session_version = 0;
};

// One command in the outcome journal: written at admission, completed with its terminal
// response. A row without a response at start is a command in flight at the crash.
struct JournalEntry {
  std::uint64_t seq = 0;  // the journal's key, chosen by the writer of the admission
  std::string principal;
  std::optional<std::string> command_id;
  std::optional<std::string> idempotency_key;
  std::string command;
  std::optional<std::string> session_id;
  std::string fingerprint;
  std::int64_t admitted_at_ms = 0;
  std::optional<std::int64_t> finished_at_ms;
  std::optional<std::string> response;  // journal_codec.hpp's form of the terminal response
};

// Journal retention (the writer applies it about once a second): finished entries older
// than max_age_ms, beyond the newest max_entries, or beyond max_bytes of responses leave,
// oldest first.
struct JournalRetention {
  std::int64_t max_age_ms = 3600 * 1000;
  std::size_t max_entries = 10000;
  std::size_t max_bytes = 64u << 20;
};

class Store {
 public:
  using Durable = std::function<void()>;
  virtual ~Store() = default;

  // Startup reads (before the loop runs).
  virtual std::vector<StoredSession> load_sessions() = 0;
  // Oldest first.
  virtual std::vector<JournalEntry> load_journal() = 0;

  // Inserts or replaces the row with this id.
  virtual void save_session(StoredSession session, Durable durable = {}) = 0;
  virtual void remove_session(std::string id, Durable durable = {}) = 0;

  virtual void journal_admitted(JournalEntry entry, Durable durable = {}) = 0;
  virtual void journal_finished(std::uint64_t seq, std::int64_t finished_at_ms,
                                std::string response, Durable durable = {}) = 0;
  // Drops an entry (a rejection a retry must be able to get past).
  virtual void journal_forget(std::uint64_t seq, Durable durable = {}) = 0;

  // Writes queued and not yet committed (metrics), writes that failed, and commits made.
  virtual std::size_t queued() const = 0;
  virtual std::uint64_t store_errors() const = 0;
  virtual std::uint64_t commits() const = 0;
};

}  // namespace pi_server::persistence
