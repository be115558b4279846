#include "reliability/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include "manual_clock.hpp"

using namespace pi_server;
using namespace pi_server::reliability;
using pi_server::testing::ManualClock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
BreakerOptions small() {
  BreakerOptions o;
  o.failure_threshold = 3;
  o.slow_threshold = 2;
  o.window = seconds(60);
  o.recovery = seconds(30);
  o.half_open_max_calls = 2;
  o.idle_ttl = seconds(600);
  return o;
}
}  // namespace

TEST(CircuitBreaker, OpensAfterNFailuresWithinTheWindow) {
  ManualClock clock;
  auto o = small();
  CircuitBreaker b(clock, o);
  b.record_failure();
  b.record_failure();
  clock.advance(seconds(61));  // the first two fall out of the window
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::closed);
  b.record_failure();
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_FALSE(b.allow());
  EXPECT_EQ(b.retry_after(), seconds(30));
  clock.advance(seconds(10));
  EXPECT_EQ(b.retry_after(), seconds(20));
}

TEST(CircuitBreaker, SlowRunsOpenItToo) {
  ManualClock clock;
  auto o = small();
  CircuitBreaker b(clock, o);
  b.record_slow();
  EXPECT_EQ(b.state(), BreakerState::closed);
  b.record_slow();
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_EQ(b.failures(), 0u) << "slow runs are counted apart from failures";
  EXPECT_EQ(b.slow_calls(), 2u);
}

TEST(CircuitBreaker, HalfOpenAdmitsBoundedProbesThenSuccessCloses) {
  ManualClock clock;
  auto o = small();
  CircuitBreaker b(clock, o);
  for (int i = 0; i < 3; ++i) b.record_failure();
  clock.advance(seconds(30));
  EXPECT_EQ(b.state(), BreakerState::half_open);
  EXPECT_TRUE(b.allow());
  EXPECT_TRUE(b.allow());
  EXPECT_FALSE(b.allow()) << "at most half_open_max_calls probes";
  b.release_probe();
  EXPECT_TRUE(b.allow());
  b.record_success();
  EXPECT_EQ(b.state(), BreakerState::closed);
  EXPECT_TRUE(b.allow());
  EXPECT_EQ(b.failures(), 0u);
}

TEST(CircuitBreaker, HalfOpenFailureReopens) {
  ManualClock clock;
  auto o = small();
  CircuitBreaker b(clock, o);
  for (int i = 0; i < 3; ++i) b.record_failure();
  clock.advance(seconds(31));
  EXPECT_TRUE(b.allow());
  b.record_failure();
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_EQ(b.times_opened(), 2u);
  EXPECT_EQ(b.retry_after(), seconds(30));
}

TEST(CircuitBreakerManager, RejectsWithMessageAndPrunesIdleBreakers) {
  ManualClock clock;
  CircuitBreakerManager m(clock, small());
  EXPECT_FALSE(m.check("openai"));
  for (int i = 0; i < 3; ++i) m.breaker("openai").record_failure();
  clock.advance(seconds(5));
  auto r = m.check("openai");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message, "Circuit open for openai (recovery in 25s)");
  EXPECT_EQ(r->retry_after, seconds(25));
  EXPECT_TRUE(m.any_open());
  EXPECT_EQ(m.snapshot()["openai"]["state"], "open");
  m.breaker("anthropic");
  clock.advance(seconds(601));
  m.prune();
  EXPECT_EQ(m.all().count("anthropic"), 0u) << "idle closed breaker pruned";
  EXPECT_EQ(m.all().count("openai"), 1u) << "a non-closed breaker is kept";
}

TEST(TokenBucket, BurstThenRate) {
  ManualClock clock;
  TokenBucket t(clock, 10, 3);
  EXPECT_TRUE(t.try_take());
  EXPECT_TRUE(t.try_take());
  EXPECT_TRUE(t.try_take());
  EXPECT_FALSE(t.try_take());
  EXPECT_EQ(t.retry_after(), milliseconds(100));
  clock.advance(milliseconds(100));
  EXPECT_TRUE(t.try_take());
  EXPECT_FALSE(t.try_take());
  clock.advance(seconds(10));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(t.try_take());
  EXPECT_FALSE(t.try_take()) << "never more than the burst";
}

TEST(CircuitBreaker, ProbesThatNeverReportAreFreedAfterARecoveryPeriod) {
  ManualClock clock;
  auto o = small();
  CircuitBreaker b(clock, o);
  for (int i = 0; i < 3; ++i) b.record_failure();
  clock.advance(seconds(30));
  EXPECT_TRUE(b.allow());
  EXPECT_TRUE(b.allow());
  EXPECT_FALSE(b.allow());
  clock.advance(seconds(29));
  EXPECT_FALSE(b.allow());
  clock.advance(seconds(1));
  EXPECT_TRUE(b.allow()) << "silent probes are given up after `recovery`";
}
