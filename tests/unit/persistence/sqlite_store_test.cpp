// The SQLite store against a real temp file: round trips, durability callbacks in order,
// retention, reopening, and refusing a file it cannot use.
#include "persistence/sqlite_store.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sqlite3.h>

#include "daemon.hpp"
#include "manual_clock.hpp"
#include "persistence/outcome_journal.hpp"

using namespace pi_server;
using namespace pi_server::persistence;
namespace fs = std::filesystem;

namespace {

using pi_server::testing::TempDir;

// Runs posted callbacks on the test thread when asked (the loop, in the daemon).
struct Loop {
  std::mutex mu;
  std::vector<std::function<void()>> posted;
  SqliteStore::Post post() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu);
      posted.push_back(std::move(fn));
    };
  }
  void run() {
    std::vector<std::function<void()>> now;
    {
      std::lock_guard lock(mu);
      now.swap(posted);
    }
    for (auto& fn : now) fn();
  }
};

JournalEntry entry(std::uint64_t seq, const std::string& id) {
  JournalEntry e;
  e.seq = seq;
  e.principal = "local";
  e.command_id = id;
  e.command = "get_state";
  e.session_id = "s";
  e.fingerprint = "fp-" + id;
  e.admitted_at_ms = 1000 + static_cast<std::int64_t>(seq);
  return e;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST(SqliteStore, SessionsAndJournalSurviveReopening) {
  TempDir dir;
  fs::path path = fs::path(dir.path()) / "pi-server.db";
  Loop loop;
  std::vector<int> durable;
  {
    auto store = SqliteStore::open(path, {}, loop.post());
    ASSERT_TRUE(store) << store.error();
    StoredSession s;
    s.id = "s1";
    s.owner = "alice";
    s.cwd = "/w";
    s.session_file = "/w/f.jsonl";
    s.model = "p/m";
    s.name = "n";
    s.created_at_ms = 5;
    s.last_active_at_ms = 6;
    s.session_version = 7;
    (*store)->save_session(s, [&] { durable.push_back(1); });
    (*store)->journal_admitted(entry(1, "a"), [&] { durable.push_back(2); });
    (*store)->journal_admitted(entry(2, "b"), [&] { durable.push_back(3); });
    (*store)->journal_finished(1, now_ms(), R"({"success":true})", [&] { durable.push_back(4); });
    (*store)->flush();
    loop.run();
    EXPECT_EQ(durable, (std::vector<int>{1, 2, 3, 4})) << "callbacks in write order, after commit";
    EXPECT_GE((*store)->commits(), 1u);
  }
  auto store = SqliteStore::open(path, {}, loop.post());
  ASSERT_TRUE(store) << store.error();
  auto sessions = (*store)->load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].owner, "alice");
  EXPECT_EQ(sessions[0].session_file, "/w/f.jsonl");
  EXPECT_EQ(sessions[0].session_version, 7u);
  EXPECT_EQ(sessions[0].state, "active");
  auto journal = (*store)->load_journal();
  ASSERT_EQ(journal.size(), 2u);
  EXPECT_EQ(journal[0].response, R"({"success":true})");
  EXPECT_FALSE(journal[1].response) << "b was in flight";
  (*store)->remove_session("s1");
  (*store)->journal_forget(2);
  (*store)->flush();
  EXPECT_TRUE((*store)->load_sessions().empty());
  EXPECT_EQ((*store)->load_journal().size(), 1u);
}

TEST(SqliteStore, RecoveryTurnsInFlightEntriesIntoOutcomeUnknown) {
  TempDir dir;
  Loop loop;
  auto store = SqliteStore::open(fs::path(dir.path()) / "db", {}, loop.post());
  ASSERT_TRUE(store);
  protocol::Response ok = protocol::success_response("get_state", "a", nlohmann::json{{"v", 1}});
  ok.session_version = 3;
  (*store)->journal_admitted(entry(1, "a"));
  (*store)->journal_finished(1, now_ms(), encode_response(ok));
  (*store)->journal_admitted(entry(2, "b"));
  (*store)->flush();
  pi_server::testing::ManualClock clock;
  reliability::OutcomeStore outcomes(clock, 100, std::chrono::seconds(3600));
  auto recovered = recover_journal(**store, outcomes);
  EXPECT_EQ(recovered.restored, 2u);
  EXPECT_EQ(recovered.next_seq, 3u);
  ASSERT_EQ(recovered.in_flight_at_crash.size(), 1u);
  EXPECT_EQ(recovered.in_flight_at_crash[0]["commandId"], "b");
  auto a = outcomes.find_by_id("local", "a");
  ASSERT_TRUE(a && a->done);
  EXPECT_EQ(a->response.data, ok.data);
  EXPECT_EQ(a->response.session_version, 3u);
  auto b = outcomes.find_by_id("local", "b");
  ASSERT_TRUE(b && b->done);
  EXPECT_EQ(b->response.code, ErrorCode::outcome_unknown);
  // The unknown outcome is written back: a second restart reports nothing new in flight.
  (*store)->flush();
  reliability::OutcomeStore again(clock, 100, std::chrono::seconds(3600));
  EXPECT_TRUE(recover_journal(**store, again).in_flight_at_crash.empty());
  EXPECT_EQ(again.find_by_id("local", "b")->response.code, ErrorCode::outcome_unknown);
}

TEST(SqliteStore, RetentionDropsOldAndExcessFinishedEntriesOnly) {
  TempDir dir;
  Loop loop;
  SqliteOptions options;
  options.retention.max_age_ms = 60000;
  options.retention.max_entries = 3;
  auto store = SqliteStore::open(fs::path(dir.path()) / "db", options, loop.post());
  ASSERT_TRUE(store);
  (*store)->journal_admitted(entry(1, "old"));
  (*store)->journal_finished(1, now_ms() - 120000, R"({"success":true})");
  for (std::uint64_t i = 2; i <= 6; ++i) {
    (*store)->journal_admitted(entry(i, "n" + std::to_string(i)));
    (*store)->journal_finished(i, now_ms(), R"({"success":true})");
  }
  (*store)->journal_admitted(entry(7, "running"));
  (*store)->apply_retention_now();
  auto left = (*store)->load_journal();
  std::vector<std::string> ids;
  for (auto& e : left) ids.push_back(*e.command_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"n4", "n5", "n6", "running"}));
}

TEST(SqliteStore, ByteBoundDropsTheOldestResponses) {
  TempDir dir;
  Loop loop;
  SqliteOptions options;
  options.retention.max_bytes = 2500;
  auto store = SqliteStore::open(fs::path(dir.path()) / "db", options, loop.post());
  ASSERT_TRUE(store);
  std::string big = R"({"success":true,"data":")" + std::string(1000, 'x') + "\"}";
  for (std::uint64_t i = 1; i <= 4; ++i) {
    (*store)->journal_admitted(entry(i, "b" + std::to_string(i)));
    (*store)->journal_finished(i, now_ms(), big);
  }
  (*store)->apply_retention_now();
  EXPECT_EQ((*store)->load_journal().size(), 2u);
}

TEST(SqliteStore, GarbageFileIsRefusedAndKeptUnlessResetIsAsked) {
  TempDir dir;
  fs::path path = fs::path(dir.path()) / "pi-server.db";
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string(4096, 'z');
  }
  Loop loop;
  auto refused = SqliteStore::open(path, {}, loop.post());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find(path.string()), std::string::npos) << refused.error();
  EXPECT_EQ(fs::file_size(path), 4096u) << "left as it was";
  SqliteOptions reset;
  reset.reset_corrupt = true;
  auto fresh = SqliteStore::open(path, reset, loop.post());
  ASSERT_TRUE(fresh) << fresh.error();
  EXPECT_TRUE(fs::exists((*fresh)->moved_aside()));
  EXPECT_EQ(fs::file_size((*fresh)->moved_aside()), 4096u);
  EXPECT_TRUE((*fresh)->load_sessions().empty());
}

TEST(SqliteStore, NewerSchemaIsRefused) {
  TempDir dir;
  fs::path path = fs::path(dir.path()) / "pi-server.db";
  Loop loop;
  { ASSERT_TRUE(SqliteStore::open(path, {}, loop.post())); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto refused = SqliteStore::open(path, {}, loop.post());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("newer pi-server"), std::string::npos) << refused.error();
}
