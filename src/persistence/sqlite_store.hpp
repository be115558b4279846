#pragma once
// The Store on an embedded SQLite database, <state dir>/pi-server.db, in WAL mode.
//
// Group commit: the loop only queues writes; one writer thread takes everything queued,
// applies it in one transaction, commits, then hands the batch's `durable` callbacks back to
// the loop (through `post`) in queue order. While a commit syncs, the next batch gathers, so
// under load one sync serves many commands and the loop never waits for the disk.
//
// Open checks the file (quick_check, schema version) and migrates it; a file that cannot be
// used is an error, never silently replaced: reset_corrupt moves it aside (with its -wal and
// -shm) and starts a fresh one, for an operator who asked for that.
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "persistence/store.hpp"
#include "pi_server/result.hpp"

namespace pi_server::persistence {

struct SqliteOptions {
  // synchronous=FULL (default): a commit is on disk before its responses leave, so a power
  // cut loses no answered command. NORMAL: a commit survives a crash of the daemon (the
  // WAL is in the OS's page cache) but a power cut may lose the last commits.
  bool synchronous_full = true;
  // Move an unreadable or corrupt file aside and start fresh (--reset-corrupt-db).
  bool reset_corrupt = false;
  // Most writes applied in one transaction.
  std::size_t max_batch = 4096;
  JournalRetention retention;
};

class SqliteStore : public Store {
 public:
  // Runs a callback on the loop thread (asio::post in the daemon).
  using Post = std::function<void(std::function<void()>)>;

  // Opens (creating if absent) and migrates the database, then starts the writer thread.
  // Fails with a one-line reason when the file is unreadable, corrupt, or from a newer
  // schema (unless options.reset_corrupt moved it aside).
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& path,
                                                   SqliteOptions options, Post post);
  // Commits what is queued, stops the writer, closes the database. Callbacks of that last
  // batch are posted like any other (they run only if the loop still runs).
  ~SqliteStore() override;

  std::vector<StoredSession> load_sessions() override;
  std::vector<JournalEntry> load_journal() override;
  // (The same defaults as Store's: callers may hold either type.)
  void save_session(StoredSession session, Durable durable = {}) override;
  void remove_session(std::string id, Durable durable = {}) override;
  void journal_admitted(JournalEntry entry, Durable durable = {}) override;
  void journal_finished(std::uint64_t seq, std::int64_t finished_at_ms, std::string response,
                        Durable durable = {}) override;
  void journal_forget(std::uint64_t seq, Durable durable = {}) override;
  std::size_t queued() const override { return queued_.load(); }
  std::uint64_t store_errors() const override { return errors_.load(); }
  std::uint64_t commits() const override { return commits_.load(); }

  // Commits what is queued now and waits for it (tests, shutdown).
  void flush();
  // Applies the journal retention now (the writer does it about once a second).
  void apply_retention_now();
  // The file moved aside by reset_corrupt, if any.
  const std::filesystem::path& moved_aside() const { return moved_aside_; }

  // The newest schema this build knows.
  static constexpr int kSchemaVersion = 1;

 private:
  struct Op;
  struct Statements;
  SqliteStore(sqlite3* db, SqliteOptions options, Post post);
  Status prepare();
  void enqueue(Op op);
  void run();
  void apply(const Op& op);
  void retention();
  void report_error(const char* msg, std::string error);

  sqlite3* db_;
  SqliteOptions options_;
  Post post_;
  std::unique_ptr<Statements> statements_;
  std::filesystem::path moved_aside_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable flushed_;
  std::deque<Op> queue_;
  std::uint64_t enqueued_ = 0;   // ops queued, ever (under mutex_)
  std::uint64_t committed_ = 0;  // ops committed, ever (under mutex_)
  bool stopping_ = false;
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::thread writer_;
};

}  // namespace pi_server::persistence
