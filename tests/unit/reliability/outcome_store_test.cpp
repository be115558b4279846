#include "reliability/outcome_store.hpp"

#include <gtest/gtest.h>

#include "manual_clock.hpp"

using namespace pi_server;
using namespace pi_server::reliability;
using pi_server::testing::ManualClock;

namespace {
protocol::Envelope envelope(const std::string& text) {
  auto r = protocol::parse_envelope(text);
  EXPECT_TRUE(r) << text;
  return r.value();
}
}  // namespace

TEST(Fingerprint, IgnoresIdAndIdempotencyKeyAndKeyOrder) {
  auto a = nlohmann::json::parse(R"({"type":"prompt","id":"1","idempotencyKey":"k","message":"x","sessionId":"s"})");
  auto b = nlohmann::json::parse(R"({"sessionId":"s","message":"x","type":"prompt","id":"2"})");
  auto c = nlohmann::json::parse(R"({"sessionId":"s","message":"y","type":"prompt","id":"1"})");
  EXPECT_EQ(fingerprint(a), fingerprint(b));
  EXPECT_NE(fingerprint(a), fingerprint(c));
}

TEST(OutcomeStore, FindsByIdThenByKeyAndTellsConflicts) {
  ManualClock clock;
  OutcomeStore store(clock, 10, std::chrono::seconds(60));
  auto e1 = envelope(R"({"type":"prompt","id":"a","idempotencyKey":"k","sessionId":"s","message":"x"})");
  auto fp = fingerprint(e1.body);
  EXPECT_EQ(store.find("p", e1, fp).match, OutcomeStore::Match::none);
  auto rec = store.begin("p", e1, fp);
  EXPECT_EQ(store.find("p", e1, fp).match, OutcomeStore::Match::same);
  auto by_key = envelope(R"({"type":"prompt","id":"other","idempotencyKey":"k","sessionId":"s","message":"x"})");
  EXPECT_EQ(store.find("p", by_key, fingerprint(by_key.body)).record, rec);
  auto changed = envelope(R"({"type":"prompt","id":"a","sessionId":"s","message":"DIFFERENT"})");
  EXPECT_EQ(store.find("p", changed, fingerprint(changed.body)).match, OutcomeStore::Match::conflict);
  // Another principal, or the same key on another session, is another identity.
  EXPECT_EQ(store.find("q", e1, fp).match, OutcomeStore::Match::none);
  auto other_session = envelope(R"({"type":"prompt","idempotencyKey":"k","sessionId":"t","message":"x"})");
  EXPECT_EQ(store.find("p", other_session, fingerprint(other_session.body)).match,
            OutcomeStore::Match::none);
}

TEST(OutcomeStore, EvictsOldestFinishedByCountAndAge) {
  ManualClock clock;
  OutcomeStore store(clock, 3, std::chrono::seconds(60));
  std::vector<std::shared_ptr<OutcomeRecord>> recs;
  for (int i = 0; i < 5; ++i) {
    auto e = envelope(R"({"type":"list_sessions","id":")" + std::to_string(i) + "\"}");
    auto r = store.begin("p", e, fingerprint(e.body));
    (void)store.complete(r, protocol::success_response("list_sessions", std::to_string(i)));
    clock.advance(std::chrono::seconds(1));
  }
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.evictions(), 2u);
  EXPECT_EQ(store.find_by_id("p", "0"), nullptr);
  EXPECT_EQ(store.find_by_id("p", "1"), nullptr);
  EXPECT_NE(store.find_by_id("p", "2"), nullptr);
  // In-flight records are never evicted; finished ones age out.
  auto e = envelope(R"({"type":"list_sessions","id":"running"})");
  store.begin("p", e, fingerprint(e.body));
  clock.advance(std::chrono::seconds(120));
  EXPECT_EQ(store.find_by_id("p", "4"), nullptr);
  EXPECT_NE(store.find_by_id("p", "running"), nullptr);
  EXPECT_EQ(store.evictions(), 5u);
}

TEST(OutcomeStore, IsBoundedByBytesAsWellAsCount) {
  ManualClock clock;
  OutcomeStore store(clock, 1000, std::chrono::seconds(3600), 64 * 1024);
  std::string payload(10 * 1024, 'z');
  for (int i = 0; i < 20; ++i) {
    auto env = envelope(R"({"type":"list_sessions","id":"c)" + std::to_string(i) + R"("})");
    auto rec = store.begin("local", env, "fp");
    auto r = protocol::success_response("list_sessions", env.id, nlohmann::json{{"blob", payload}});
    (void)store.complete(rec, r);
  }
  EXPECT_LE(store.bytes(), 64u * 1024);
  EXPECT_GT(store.evictions(), 10u) << "twenty 10 KiB answers do not fit in 64 KiB";
  EXPECT_FALSE(store.find_by_id("local", "c0")) << "the oldest left first";
  EXPECT_TRUE(store.find_by_id("local", "c19"));
}
