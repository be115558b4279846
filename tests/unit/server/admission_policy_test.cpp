#include "server/admission_policy.hpp"

#include <gtest/gtest.h>

#include <map>

#include "manual_clock.hpp"

using namespace pi_server;
using namespace std::chrono_literals;
using pi_server::testing::ManualClock;

namespace {

class FakeProviders : public session::ProviderLookup {
 public:
  std::string provider_of(const std::string& session_id, const Principal&) const override {
    auto it = providers.find(session_id);
    return it == providers.end() ? "" : it->second;
  }
  std::map<std::string, std::string> providers{{"s", "acme"}};
};

reliability::Submission submission(const std::string& text, std::uint64_t conn = 1) {
  reliability::Submission sub;
  sub.envelope = protocol::parse_envelope(text).value();
  sub.connection_id = conn;
  return sub;
}

const std::string kPrompt = R"({"type":"prompt","id":"p","sessionId":"s","message":"hi"})";
const std::string kGetState = R"({"type":"get_state","id":"g","sessionId":"s"})";
const std::string kBash = R"({"type":"bash","id":"b","sessionId":"s","command":"ls"})";

struct Harness {
  explicit Harness(server::RateLimit limit = {1000, 1000}) : policy(clock, clock, limit, breaker_options(), providers) {}
  static BreakerOptions breaker_options() {
    BreakerOptions o;
    o.failure_threshold = 3;
    o.recovery = 1000ms;
    o.half_open_max_calls = 1;
    return o;
  }
  ManualClock clock;
  FakeProviders providers;
  server::AdmissionPolicy policy;
};

}  // namespace

TEST(AdmissionPolicy, RateLimitIsPerConnectionWithRetryAfter) {
  Harness h({1, 2});
  EXPECT_FALSE(h.policy.admit(submission(kGetState)));
  EXPECT_FALSE(h.policy.admit(submission(kGetState)));
  auto refused = h.policy.admit(submission(kGetState));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, ErrorCode::rate_limited);
  EXPECT_GT(refused->data->at("retryAfterMs").get<std::int64_t>(), 0);
  EXPECT_FALSE(h.policy.admit(submission(kGetState, 2))) << "another connection has its own bucket";
  h.clock.advance(1000ms);
  EXPECT_FALSE(h.policy.admit(submission(kGetState))) << "tokens refill with time";
  EXPECT_TRUE(h.policy.admit(submission(kGetState)));
  h.policy.forget_connection(1);
  EXPECT_FALSE(h.policy.admit(submission(kGetState))) << "a closed connection's bucket is dropped";
}

TEST(AdmissionPolicy, BreakerKeyFollowsTheCommandTable) {
  Harness h;
  EXPECT_EQ(h.policy.breaker_key_for(submission(kPrompt).envelope), "acme");
  EXPECT_EQ(h.policy.breaker_key_for(submission(kBash).envelope), "bash");
  EXPECT_EQ(h.policy.breaker_key_for(submission(kGetState).envelope), "");
  EXPECT_EQ(h.policy.breaker_key_for(
                submission(R"({"type":"prompt","sessionId":"other","message":"x"})").envelope),
            "")
      << "no provider known yet: no breaker";
}

TEST(AdmissionPolicy, ProviderFailuresOpenTheCircuitForLlmBoundCommandsOnly) {
  Harness h;
  for (int i = 0; i < 3; ++i) h.policy.on_provider_result("acme", session::ProviderResult::failure);
  auto refused = h.policy.admit(submission(kPrompt));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, ErrorCode::circuit_open);
  EXPECT_EQ(refused->data->at("provider"), "acme");
  EXPECT_EQ(refused->session_id, "s");
  EXPECT_FALSE(h.policy.admit(submission(kGetState))) << "reads do not reach the provider";
  EXPECT_TRUE(h.policy.breakers().any_open());

  h.clock.advance(1000ms);
  EXPECT_FALSE(h.policy.admit(submission(kPrompt))) << "half-open: one probe";
  EXPECT_TRUE(h.policy.admit(submission(kPrompt))) << "only one probe at a time";
  h.policy.on_provider_result("acme", session::ProviderResult::success);
  EXPECT_FALSE(h.policy.breakers().any_open());
  EXPECT_FALSE(h.policy.admit(submission(kPrompt)));
}

TEST(AdmissionPolicy, ProbeThatEndsWithoutVerdictFreesItsSlot) {
  Harness h;
  for (int i = 0; i < 3; ++i) h.policy.on_provider_result("acme", session::ProviderResult::failure);
  h.clock.advance(1000ms);
  auto probe = submission(kPrompt);
  ASSERT_FALSE(h.policy.admit(probe));
  // The agent was busy: the prompt failed without a provider verdict.
  h.policy.on_finished(probe, protocol::error_response("prompt", "p", ErrorCode::agent_exited, "x"));
  EXPECT_FALSE(h.policy.admit(submission(kPrompt))) << "the probe slot is free again";
}

TEST(AdmissionPolicy, BashTimeoutsOpenTheBashBreaker) {
  Harness h;
  auto bash = submission(kBash);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(h.policy.admit(bash));
    auto r = protocol::error_response("bash", "b", ErrorCode::timeout, "slow");
    h.policy.on_finished(bash, r);
  }
  auto refused = h.policy.admit(bash);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, ErrorCode::circuit_open);
  EXPECT_FALSE(h.policy.admit(submission(kPrompt))) << "the provider breaker is another one";
}

TEST(AdmissionPolicy, SlowRunsCountAgainstTheProvider) {
  Harness h;
  BreakerOptions o = Harness::breaker_options();
  for (std::size_t i = 0; i < o.slow_threshold; ++i) h.policy.on_run_finished("acme", o.slow_call + 1s);
  EXPECT_TRUE(h.policy.admit(submission(kPrompt)));
}

TEST(AdmissionPolicyCompact, ASuccessfulCompactIsTheProvidersSuccess) {
  ManualClock clock;
  FakeProviders providers;
  BreakerOptions o;
  o.failure_threshold = 2;
  o.recovery = 1000ms;
  o.half_open_max_calls = 1;
  server::AdmissionPolicy policy(clock, clock, {1000, 1000}, o, providers);
  for (int i = 0; i < 2; ++i) policy.on_provider_result("acme", session::ProviderResult::failure);
  clock.advance(1000ms);
  auto compact = submission(R"({"type":"compact","id":"c","sessionId":"s"})");
  ASSERT_FALSE(policy.admit(compact)) << "the half-open probe";
  policy.on_finished(compact, protocol::success_response("compact", "c"));
  EXPECT_FALSE(policy.breakers().any_open()) << "compact emits no assistant message: its answer closes it";
}
