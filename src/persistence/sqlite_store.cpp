#include "persistence/sqlite_store.hpp"

#include <chrono>
#include <memory>
#include <utility>

#include "observability/log.hpp"

namespace pi_server::persistence {
namespace fs = std::filesystem;

namespace {

// Migration N takes the schema from version N to N+1; never edit one that has shipped,
// append the next.
constexpr const char* kMigrations[] = {
    // 0 -> 1: sessions and the outcome journal.
    R"sql(
    CREATE TABLE sessions (
      id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      cwd TEXT NOT NULL,
      session_file TEXT NOT NULL,
      model TEXT NOT NULL,
      name TEXT NOT NULL,
      thinking_level TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      last_active_at INTEGER NOT NULL,
      state TEXT NOT NULL,
      session_version INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_owner ON sessions(owner);
    CREATE TABLE outcomes (
      seq INTEGER PRIMARY KEY,
      principal TEXT NOT NULL,
      command_id TEXT,
      idempotency_key TEXT,
      command TEXT NOT NULL,
      session_id TEXT,
      fingerprint TEXT NOT NULL,
      admitted_at INTEGER NOT NULL,
      finished_at INTEGER,
      response TEXT
    );
    CREATE INDEX outcomes_by_finish ON outcomes(finished_at);
    )sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string errmsg(sqlite3* db) { return db ? sqlite3_errmsg(db) : "out of memory"; }

Status exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) == SQLITE_OK) return Status::ok();
  std::string message = error ? error : errmsg(db);
  sqlite3_free(error);
  return Status::error(message);
}

// A prepared statement, finalized however the scope ends.
struct Finalize {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Statement = std::unique_ptr<sqlite3_stmt, Finalize>;

// Runs `sql` and calls `on_row` for each row; the failure's message, if it fails.
template <class OnRow>
Status for_each_row(sqlite3* db, const char* sql, OnRow&& on_row) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) return Status::error(errmsg(db));
  Statement stmt(raw);
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) on_row(stmt.get());
  if (rc != SQLITE_DONE) return Status::error(errmsg(db));
  return Status::ok();
}

// The first column of the first row of `sql`, as text ("" when there is none).
Result<std::string> query_text(sqlite3* db, const char* sql) {
  std::string out;
  bool first = true;
  auto status = for_each_row(db, sql, [&](sqlite3_stmt* stmt) {
    if (!std::exchange(first, false)) return;
    if (auto* text = sqlite3_column_text(stmt, 0)) out = reinterpret_cast<const char*>(text);
  });
  if (!status) return status;
  return out;
}

// Opens, checks and migrates; the handle on success.
Result<sqlite3*> open_checked(const fs::path& path, bool synchronous_full) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  auto fail = [&](std::string message) -> Result<sqlite3*> {
    sqlite3_close(db);
    return Status::error(std::move(message));
  };
  if (rc != SQLITE_OK) return fail(errmsg(db));
  // A backup (sqlite3 .backup) or a checkpoint may hold a lock briefly: wait, not fail.
  sqlite3_busy_timeout(db, 5000);
  auto mode = query_text(db, "PRAGMA journal_mode=WAL");
  if (!mode) return fail(mode.error());
  if (*mode != "wal") return fail("cannot switch to WAL mode (journal_mode is " + *mode + ")");
  auto check = query_text(db, "PRAGMA quick_check");
  if (!check) return fail(check.error());
  if (*check != "ok") return fail("integrity check failed: " + *check);
  if (auto s = exec(db, synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"); !s)
    return fail(s.message());
  if (auto s = exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); !s)
    return fail(s.message());
  auto version_text = query_text(db, "SELECT version FROM schema_version");
  if (!version_text) return fail(version_text.error());
  int version = version_text->empty() ? 0 : std::stoi(*version_text);
  if (version > SqliteStore::kSchemaVersion)
    return fail("written by a newer pi-server (schema " + std::to_string(version) +
                ", this build knows up to " + std::to_string(SqliteStore::kSchemaVersion) + ")");
  if (version < SqliteStore::kSchemaVersion) {
    if (auto s = exec(db, "BEGIN IMMEDIATE"); !s) return fail(s.message());
    for (int v = version; v < SqliteStore::kSchemaVersion; ++v) {
      if (auto s = exec(db, kMigrations[v]); !s) {
        (void)exec(db, "ROLLBACK");
        return fail("migration to schema " + std::to_string(v + 1) + " failed: " + s.message());
      }
    }
    std::string set = "DELETE FROM schema_version; INSERT INTO schema_version VALUES (" +
                      std::to_string(SqliteStore::kSchemaVersion) + "); COMMIT";
    if (auto s = exec(db, set.c_str()); !s) {
      (void)exec(db, "ROLLBACK");
      return fail(s.message());
    }
    log::info("db_migrated", {{"path", path.string()}, {"from", version},
                              {"to", SqliteStore::kSchemaVersion}});
  }
  return db;
}

}  // namespace

struct SqliteStore::Op {
  enum class Kind { save_session, remove_session, admit, finish, forget, retain };
  Kind kind = Kind::retain;
  StoredSession session;
  JournalEntry entry;
  Durable durable;
};

// Prepared once, used by the writer thread only.
struct SqliteStore::Statements {
  sqlite3_stmt* save_session = nullptr;
  sqlite3_stmt* remove_session = nullptr;
  sqlite3_stmt* admit = nullptr;
  sqlite3_stmt* finish = nullptr;
  sqlite3_stmt* forget = nullptr;
  sqlite3_stmt* expire_by_age = nullptr;
  sqlite3_stmt* expire_by_count = nullptr;
  sqlite3_stmt* expire_by_bytes = nullptr;
  ~Statements() {
    for (auto* s : {save_session, remove_session, admit, finish, forget, expire_by_age,
                    expire_by_count, expire_by_bytes})
      sqlite3_finalize(s);
  }
};

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const fs::path& path, SqliteOptions options,
                                                       Post post) {
  auto db = open_checked(path, options.synchronous_full);
  fs::path moved;
  if (!db && options.reset_corrupt) {
    moved = path;
    moved += ".corrupt-" + std::to_string(now_ms());
    std::error_code ec;
    fs::rename(path, moved, ec);
    if (ec) return Status::error(path.string() + ": " + db.error() + "; moving it aside failed: " + ec.message());
    for (const char* suffix : {"-wal", "-shm"}) {
      fs::path side = path;
      side += suffix;
      fs::path side_moved = moved;
      side_moved += suffix;
      if (fs::exists(side, ec)) fs::rename(side, side_moved, ec);
    }
    log::warn("db_moved_aside", {{"path", path.string()}, {"movedTo", moved.string()},
                                 {"reason", db.error()}});
    db = open_checked(path, options.synchronous_full);
  }
  if (!db) return Status::error(path.string() + ": " + db.error());
  std::unique_ptr<SqliteStore> store(new SqliteStore(*db, std::move(options), std::move(post)));
  store->moved_aside_ = moved;
  if (auto prepared = store->prepare(); !prepared)
    return Status::error(path.string() + ": " + prepared.message());
  store->writer_ = std::thread([s = store.get()] { s->run(); });
  return store;
}

SqliteStore::SqliteStore(sqlite3* db, SqliteOptions options, Post post)
    : db_(db), options_(std::move(options)), post_(std::move(post)) {}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  statements_.reset();
  sqlite3_close(db_);
}

Status SqliteStore::prepare() {
  statements_ = std::make_unique<Statements>();
  auto& s = *statements_;
  struct Entry {
    sqlite3_stmt** stmt;
    const char* sql;
  } entries[] = {
      {&s.save_session,
       "INSERT OR REPLACE INTO sessions (id, owner, cwd, session_file, model, name, "
       "thinking_level, created_at, last_active_at, state, session_version) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
      {&s.remove_session, "DELETE FROM sessions WHERE id = ?1"},
      {&s.admit,
       "INSERT OR REPLACE INTO outcomes (seq, principal, command_id, idempotency_key, command, "
       "session_id, fingerprint, admitted_at, finished_at, response) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&s.finish, "UPDATE outcomes SET finished_at = ?2, response = ?3 WHERE seq = ?1"},
      {&s.forget, "DELETE FROM outcomes WHERE seq = ?1"},
      {&s.expire_by_age, "DELETE FROM outcomes WHERE finished_at IS NOT NULL AND finished_at < ?1"},
      {&s.expire_by_count,
       "DELETE FROM outcomes WHERE finished_at IS NOT NULL AND seq <= (SELECT seq FROM outcomes "
       "WHERE finished_at IS NOT NULL ORDER BY seq DESC LIMIT 1 OFFSET ?1)"},
      {&s.expire_by_bytes,
       "DELETE FROM outcomes WHERE finished_at IS NOT NULL AND seq <= (SELECT seq FROM (SELECT "
       "seq, SUM(length(response)) OVER (ORDER BY seq DESC) AS newer FROM outcomes WHERE "
       "finished_at IS NOT NULL) WHERE newer > ?1 ORDER BY seq DESC LIMIT 1)"},
  };
  for (auto& e : entries)
    if (sqlite3_prepare_v3(db_, e.sql, -1, SQLITE_PREPARE_PERSISTENT, e.stmt, nullptr) != SQLITE_OK)
      return Status::error(errmsg(db_));
  return Status::ok();
}

namespace {

void bind_text(sqlite3_stmt* stmt, int index, const std::string& text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}
void bind_optional(sqlite3_stmt* stmt, int index, const std::optional<std::string>& text) {
  if (text) bind_text(stmt, index, *text);
  else sqlite3_bind_null(stmt, index);
}
std::string column_text(sqlite3_stmt* stmt, int index) {
  auto* text = sqlite3_column_text(stmt, index);
  return text ? std::string(reinterpret_cast<const char*>(text),
                            static_cast<std::size_t>(sqlite3_column_bytes(stmt, index)))
              : std::string();
}
std::optional<std::string> column_optional(sqlite3_stmt* stmt, int index) {
  if (sqlite3_column_type(stmt, index) == SQLITE_NULL) return std::nullopt;
  return column_text(stmt, index);
}

}  // namespace

std::vector<StoredSession> SqliteStore::load_sessions() {
  std::vector<StoredSession> out;
  auto status = for_each_row(
      db_,
      "SELECT id, owner, cwd, session_file, model, name, thinking_level, created_at, "
      "last_active_at, state, session_version FROM sessions ORDER BY created_at, id",
      [&out](sqlite3_stmt* stmt) {
        StoredSession s;
        s.id = column_text(stmt, 0);
        s.owner = column_text(stmt, 1);
        s.cwd = column_text(stmt, 2);
        s.session_file = column_text(stmt, 3);
        s.model = column_text(stmt, 4);
        s.name = column_text(stmt, 5);
        s.thinking_level = column_text(stmt, 6);
        s.created_at_ms = sqlite3_column_int64(stmt, 7);
        s.last_active_at_ms = sqlite3_column_int64(stmt, 8);
        s.state = column_text(stmt, 9);
        s.session_version = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 10));
        out.push_back(std::move(s));
      });
  if (!status) log::error("db_read_failed", {{"error", status.message()}});
  return out;
}

std::vector<JournalEntry> SqliteStore::load_journal() {
  std::vector<JournalEntry> out;
  auto status = for_each_row(
      db_,
      "SELECT seq, principal, command_id, idempotency_key, command, session_id, fingerprint, "
      "admitted_at, finished_at, response FROM outcomes ORDER BY seq",
      [&out](sqlite3_stmt* stmt) {
        JournalEntry e;
        e.seq = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
        e.principal = column_text(stmt, 1);
        e.command_id = column_optional(stmt, 2);
        e.idempotency_key = column_optional(stmt, 3);
        e.command = column_text(stmt, 4);
        e.session_id = column_optional(stmt, 5);
        e.fingerprint = column_text(stmt, 6);
        e.admitted_at_ms = sqlite3_column_int64(stmt, 7);
        if (sqlite3_column_type(stmt, 8) != SQLITE_NULL) e.finished_at_ms = sqlite3_column_int64(stmt, 8);
        e.response = column_optional(stmt, 9);
        out.push_back(std::move(e));
      });
  if (!status) log::error("db_read_failed", {{"error", status.message()}});
  return out;
}

void SqliteStore::enqueue(Op op) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(op));
    ++enqueued_;
    queued_.store(queue_.size());
  }
  wake_.notify_one();
}

void SqliteStore::save_session(StoredSession session, Durable durable) {
  Op op;
  op.kind = Op::Kind::save_session;
  op.session = std::move(session);
  op.durable = std::move(durable);
  enqueue(std::move(op));
}

void SqliteStore::remove_session(std::string id, Durable durable) {
  Op op;
  op.kind = Op::Kind::remove_session;
  op.session.id = std::move(id);
  op.durable = std::move(durable);
  enqueue(std::move(op));
}

void SqliteStore::journal_admitted(JournalEntry entry, Durable durable) {
  Op op;
  op.kind = Op::Kind::admit;
  op.entry = std::move(entry);
  op.durable = std::move(durable);
  enqueue(std::move(op));
}

void SqliteStore::journal_finished(std::uint64_t seq, std::int64_t finished_at_ms,
                                   std::string response, Durable durable) {
  Op op;
  op.kind = Op::Kind::finish;
  op.entry.seq = seq;
  op.entry.finished_at_ms = finished_at_ms;
  op.entry.response = std::move(response);
  op.durable = std::move(durable);
  enqueue(std::move(op));
}

void SqliteStore::journal_forget(std::uint64_t seq, Durable durable) {
  Op op;
  op.kind = Op::Kind::forget;
  op.entry.seq = seq;
  op.durable = std::move(durable);
  enqueue(std::move(op));
}

void SqliteStore::flush() {
  std::unique_lock lock(mutex_);
  auto target = enqueued_;
  wake_.notify_one();
  flushed_.wait(lock, [&] { return committed_ >= target || !writer_.joinable(); });
}

void SqliteStore::apply_retention_now() {
  // Through the queue: only the writer thread uses the connection.
  enqueue(Op{});  // Op's default kind is retain
  flush();
}

void SqliteStore::apply(const Op& op) {
  auto& s = *statements_;
  sqlite3_stmt* stmt = nullptr;
  switch (op.kind) {
    case Op::Kind::save_session: {
      const auto& r = op.session;
      stmt = s.save_session;
      bind_text(stmt, 1, r.id);
      bind_text(stmt, 2, r.owner);
      bind_text(stmt, 3, r.cwd);
      bind_text(stmt, 4, r.session_file);
      bind_text(stmt, 5, r.model);
      bind_text(stmt, 6, r.name);
      bind_text(stmt, 7, r.thinking_level);
      sqlite3_bind_int64(stmt, 8, r.created_at_ms);
      sqlite3_bind_int64(stmt, 9, r.last_active_at_ms);
      bind_text(stmt, 10, r.state);
      sqlite3_bind_int64(stmt, 11, static_cast<sqlite3_int64>(r.session_version));
      break;
    }
    case Op::Kind::remove_session:
      stmt = s.remove_session;
      bind_text(stmt, 1, op.session.id);
      break;
    case Op::Kind::admit: {
      const auto& e = op.entry;
      stmt = s.admit;
      sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(e.seq));
      bind_text(stmt, 2, e.principal);
      bind_optional(stmt, 3, e.command_id);
      bind_optional(stmt, 4, e.idempotency_key);
      bind_text(stmt, 5, e.command);
      bind_optional(stmt, 6, e.session_id);
      bind_text(stmt, 7, e.fingerprint);
      sqlite3_bind_int64(stmt, 8, e.admitted_at_ms);
      if (e.finished_at_ms) sqlite3_bind_int64(stmt, 9, *e.finished_at_ms);
      else sqlite3_bind_null(stmt, 9);
      bind_optional(stmt, 10, e.response);
      break;
    }
    case Op::Kind::finish:
      stmt = s.finish;
      sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(op.entry.seq));
      sqlite3_bind_int64(stmt, 2, op.entry.finished_at_ms.value_or(0));
      bind_optional(stmt, 3, op.entry.response);
      break;
    case Op::Kind::forget:
      stmt = s.forget;
      sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(op.entry.seq));
      break;
    case Op::Kind::retain:
      retention();
      return;
  }
  if (sqlite3_step(stmt) != SQLITE_DONE) {
    ++errors_;
    report_error("db_write_failed", errmsg(db_));
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
}

void SqliteStore::report_error(const char* msg, std::string error) {
  // The log sink is the loop's (single-threaded): the writer logs through the loop.
  post_([msg, error = std::move(error)] { log::error(msg, {{"error", error}}); });
}

void SqliteStore::retention() {
  auto& s = *statements_;
  auto run = [&](sqlite3_stmt* stmt, sqlite3_int64 value) {
    sqlite3_bind_int64(stmt, 1, value);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      ++errors_;
      report_error("db_retention_failed", errmsg(db_));
    }
    sqlite3_reset(stmt);
  };
  run(s.expire_by_age, now_ms() - options_.retention.max_age_ms);
  run(s.expire_by_count, static_cast<sqlite3_int64>(options_.retention.max_entries));
  run(s.expire_by_bytes, static_cast<sqlite3_int64>(options_.retention.max_bytes));
}

void SqliteStore::run() {
  auto last_retention = std::chrono::steady_clock::now();
  bool wrote_since_retention = false;
  for (;;) {
    std::deque<Op> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::seconds(1), [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() && stopping_) break;
      std::size_t n = std::min(queue_.size(), options_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_.store(queue_.size());
    }
    if (!batch.empty()) {
      bool began = static_cast<bool>(exec(db_, "BEGIN"));
      for (const auto& op : batch) apply(op);
      if (began) {
        if (auto s = exec(db_, "COMMIT"); !s) {
          ++errors_;
          report_error("db_commit_failed", s.message());
          (void)exec(db_, "ROLLBACK");
        }
      } else {
        ++errors_;
      }
      ++commits_;
      wrote_since_retention = true;
      std::vector<Durable> callbacks;
      for (auto& op : batch)
        if (op.durable) callbacks.push_back(std::move(op.durable));
      if (!callbacks.empty())
        post_([callbacks = std::move(callbacks)] {
          for (const auto& cb : callbacks) cb();
        });
      {
        std::lock_guard lock(mutex_);
        committed_ += batch.size();
      }
      flushed_.notify_all();
    }
    auto now = std::chrono::steady_clock::now();
    if (wrote_since_retention && now - last_retention >= std::chrono::seconds(1)) {
      retention();
      last_retention = now;
      wrote_since_retention = false;
    }
  }
  std::lock_guard lock(mutex_);
  flushed_.notify_all();
}

}  // namespace pi_server::persistence
