#include "reliability/command_pipeline.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "manual_clock.hpp"
#include "reliability/command_history.hpp"

using namespace pi_server;
using namespace pi_server::reliability;
using nlohmann::json;
using pi_server::testing::ManualClock;

namespace {

// Records what the pipeline asks to run; tests answer when they want.
class FakeExecutor : public Executor {
 public:
  struct Call {
    Submission sub;
    Reply reply;
  };
  void execute(const Submission& sub, Reply reply) override {
    executed.push_back(sub.envelope.body.dump());
    calls.push_back({sub, std::move(reply)});
    if (auto_reply) answer(calls.size() - 1);
  }
  void answer(std::size_t i, bool success = true) {
    const auto& env = calls[i].sub.envelope;
    protocol::Response r = success ? protocol::success_response(env.type, env.id, json{{"n", i}})
                                   : protocol::error_response(env.type, env.id, ErrorCode::agent_exited, "x");
    if (success && env.session_id) ++versions[*env.session_id];
    calls[i].reply(r);
  }
  bool auto_reply = false;
  std::vector<Call> calls;
  std::vector<std::string> executed;
  std::map<std::string, std::uint64_t> versions;
};

// Session versions as the executor's answers moved them.
class FakeVersions : public SessionVersions {
 public:
  explicit FakeVersions(const FakeExecutor& executor) : executor_(executor) {}
  std::optional<std::uint64_t> session_version(const std::string& s, const Principal&) const override {
    auto it = executor_.versions.find(s);
    if (it == executor_.versions.end()) return std::nullopt;
    return it->second;
  }
  // Sessions that exist but belong to someone the asker may not see.
  bool hidden_from(const std::string& s, const Principal& asker) const override {
    return hidden.count(s) && asker.name != "owner";
  }
  std::set<std::string> hidden;

 private:
  const FakeExecutor& executor_;
};

// Admits everything unless told to refuse; records what finished.
class FakeAdmission : public AdmissionControl {
 public:
  std::optional<protocol::Response> admit(const Submission& sub) override {
    if (!refuse) return std::nullopt;
    return protocol::error_response(sub.envelope.type, sub.envelope.id, ErrorCode::rate_limited, "no");
  }
  void on_finished(const Submission& sub, const protocol::Response& r) override {
    finished.push_back(sub.envelope.type + (r.success ? ":ok" : ":fail"));
  }
  bool refuse = false;
  std::vector<std::string> finished;
};

class FakeDelivery : public Delivery {
 public:
  void deliver(std::uint64_t conn, const protocol::Response& r) override {
    responses.push_back({conn, protocol::serialize(r)});
  }
  void deliver_event(std::uint64_t conn, std::string_view type, const json& data) override {
    events.push_back({conn, std::string(type), data});
  }
  json response(std::size_t i) const { return json::parse(responses.at(i).second); }
  // The response carrying this id (the last one, if several).
  std::optional<json> response_for(const std::string& id) const {
    std::optional<json> out;
    for (const auto& [c, text] : responses) {
      auto j = json::parse(text);
      if (j.contains("id") && j["id"] == id) out = j;
    }
    return out;
  }
  std::vector<std::pair<std::uint64_t, std::string>> responses;
  struct Event {
    std::uint64_t conn;
    std::string type;
    json data;
  };
  std::vector<Event> events;
};

struct Harness {
  explicit Harness(PipelineOptions o = {})
      : store(clock, o.max_outcomes, o.outcome_max_age),
        versions(executor),
        pipeline(clock, clock, {store, admission, versions, executor, delivery}, o) {}
  void submit(const std::string& text, std::uint64_t conn = 1, const Principal& as = local_principal()) {
    auto r = protocol::parse_envelope(text);
    ASSERT_TRUE(r) << text;
    Submission s;
    s.envelope = r.value();
    s.connection_id = conn;
    s.principal = as;
    pipeline.submit(std::move(s));
  }
  ManualClock clock;
  OutcomeStore store;
  FakeExecutor executor;
  FakeVersions versions;
  FakeAdmission admission;
  FakeDelivery delivery;
  CommandPipeline pipeline;
};

std::string prompt(const std::string& id, const std::string& session = "s", const std::string& extra = "") {
  return R"({"type":"prompt","id":")" + id + R"(","sessionId":")" + session + R"(","message":"m")" +
         extra + "}";
}

}  // namespace

TEST(CommandPipeline, DuplicateIdIsReplayedWithoutRunningAgain) {
  Harness h;
  h.submit(prompt("a"));
  ASSERT_EQ(h.executor.calls.size(), 1u);
  h.executor.answer(0);
  h.submit(prompt("a"), 2);
  EXPECT_EQ(h.executor.calls.size(), 1u) << "the agent never sees a duplicate";
  ASSERT_EQ(h.delivery.responses.size(), 2u);
  std::string first = h.delivery.responses[0].second;
  std::string second = h.delivery.responses[1].second;
  EXPECT_EQ(h.delivery.responses[1].first, 2u);
  ASSERT_EQ(second.substr(second.size() - 17), R"(,"replayed":true})");
  EXPECT_EQ(second.substr(0, second.size() - 17) + "}", first) << "byte for byte but for replayed";
}

TEST(CommandPipeline, DuplicateWhileInFlightWaitsForTheSameOutcome) {
  Harness h;
  h.submit(prompt("a"));
  h.submit(prompt("a"), 2);
  EXPECT_TRUE(h.delivery.responses.empty());
  h.executor.answer(0);
  ASSERT_EQ(h.delivery.responses.size(), 2u);
  EXPECT_EQ(h.delivery.response(0)["replayed"], nullptr);
  EXPECT_EQ(h.delivery.response(1)["replayed"], true);
  EXPECT_EQ(h.delivery.response(1)["data"], h.delivery.response(0)["data"]);
  EXPECT_EQ(h.executor.calls.size(), 1u);
}

TEST(CommandPipeline, SameIdDifferentPayloadIsAConflict) {
  Harness h;
  h.submit(prompt("a"));
  h.submit(R"({"type":"prompt","id":"a","sessionId":"s","message":"other"})");
  ASSERT_EQ(h.delivery.responses.size(), 1u);
  EXPECT_EQ(h.delivery.response(0)["code"], "conflict");
  EXPECT_EQ(h.executor.calls.size(), 1u);
}

TEST(CommandPipeline, IdempotencyKeyReplaysUnderTheNewRequestsId) {
  Harness h;
  h.submit(R"({"type":"prompt","id":"a","idempotencyKey":"k","sessionId":"s","message":"m"})");
  h.executor.answer(0);
  h.submit(R"({"type":"prompt","id":"b","idempotencyKey":"k","sessionId":"s","message":"m"})");
  h.submit(R"({"type":"prompt","idempotencyKey":"k","sessionId":"s","message":"m"})");
  ASSERT_EQ(h.delivery.responses.size(), 3u);
  EXPECT_EQ(h.delivery.response(1)["id"], "b");
  EXPECT_FALSE(h.delivery.response(2).contains("id")) << "never an id the request did not carry";
  EXPECT_EQ(h.executor.calls.size(), 1u);
}

TEST(CommandPipeline, LaneRunsInAdmissionOrderOneAtATime) {
  Harness h;
  h.submit(prompt("1"));
  h.submit(prompt("2"));
  h.submit(prompt("x", "other"));
  h.submit(prompt("3"));
  // Lane s runs 1; lane other runs x independently.
  ASSERT_EQ(h.executor.calls.size(), 2u);
  EXPECT_EQ(h.executor.calls[0].sub.envelope.id, "1");
  EXPECT_EQ(h.executor.calls[1].sub.envelope.id, "x");
  h.executor.answer(0);
  ASSERT_EQ(h.executor.calls.size(), 3u);
  EXPECT_EQ(h.executor.calls[2].sub.envelope.id, "2");
  h.executor.answer(2);
  EXPECT_EQ(h.executor.calls[3].sub.envelope.id, "3");
}

TEST(CommandPipeline, SomeoneElsesSessionGetsALaneOfItsOwnNamedLikeTheSessions) {
  Harness h;
  h.versions.hidden.insert("s");
  const Principal owner{"owner", false}, other{"other", false};
  h.submit(prompt("1"), 1, owner);
  // The owner's prompt holds lane s; another principal's command is not queued behind it
  // (as it would not be for a session that does not exist)...
  h.submit(prompt("x"), 2, other);
  ASSERT_EQ(h.executor.calls.size(), 2u);
  EXPECT_EQ(h.executor.calls[1].sub.envelope.id, "x");
  // ...and its lane is still called session:s where clients and metrics see it.
  EXPECT_EQ(h.pipeline.lane_depths().at("session:s"), 2u);
  bool named = false;
  for (const auto& e : h.delivery.events)
    if (e.type == "command_accepted" && e.data["commandId"] == "x") {
      EXPECT_EQ(e.data["lane"], "session:s");
      named = true;
    }
  EXPECT_TRUE(named);
}

TEST(CommandPipeline, AbortBypassesABusyLane) {
  Harness h;
  h.submit(R"({"type":"bash","id":"b","sessionId":"s","command":"sleep 100"})");
  h.submit(R"({"type":"abort_bash","id":"ab","sessionId":"s"})");
  ASSERT_EQ(h.executor.calls.size(), 2u);
  EXPECT_EQ(h.executor.calls[1].sub.envelope.type, "abort_bash");
}

TEST(CommandPipeline, FullLaneIsRejectedWithLimitReached) {
  PipelineOptions o;
  o.max_pending_per_lane = 2;
  Harness h(o);
  for (int i = 0; i < 4; ++i) h.submit(prompt(std::to_string(i)));
  ASSERT_EQ(h.delivery.responses.size(), 1u);
  EXPECT_EQ(h.delivery.response(0)["code"], "limit_reached");
  EXPECT_EQ(h.delivery.response(0)["id"], "3");
  // Not stored: a retry after the lane drains is a fresh command.
  h.executor.answer(0);
  h.submit(prompt("3"));
  h.executor.answer(1);
  h.executor.answer(2);
  EXPECT_EQ(h.executor.calls.size(), 4u);
}

TEST(CommandPipeline, DependsOnWaitsForSuccessAndFailsOnFailureOrUnknown) {
  Harness h;
  h.submit(prompt("a", "s1"));
  h.submit(prompt("b", "s2", R"(,"dependsOn":["a"])"));
  EXPECT_EQ(h.executor.calls.size(), 1u) << "b waits for a";
  h.executor.answer(0);
  ASSERT_EQ(h.executor.calls.size(), 2u);
  h.executor.answer(1);

  h.submit(prompt("c", "s3"));
  h.submit(prompt("d", "s4", R"(,"dependsOn":["c"])"));
  h.executor.answer(2, /*success=*/false);
  EXPECT_EQ(h.delivery.response_for("d")->at("code"), "dependency_failed");

  h.submit(prompt("e", "s5", R"(,"dependsOn":["never-seen"])"));
  EXPECT_EQ(h.delivery.response_for("e")->at("code"), "dependency_failed");
  EXPECT_EQ(h.executor.calls.size(), 3u);
}

TEST(CommandPipeline, DependencyQueuedBehindInTheSameLaneFailsFast) {
  Harness h;
  h.submit(prompt("first"));  // occupies lane s
  h.submit(prompt("waiter", "s", R"(,"dependsOn":["later"])"));
  h.submit(prompt("later"));
  h.executor.answer(0);  // waiter starts, finds "later" queued behind it
  EXPECT_EQ(h.delivery.response_for("waiter")->at("code"), "dependency_failed");
  ASSERT_EQ(h.executor.calls.size(), 2u);
  EXPECT_EQ(h.executor.calls[1].sub.envelope.id, "later");
}

TEST(CommandPipeline, DependencyCycleFailsFast) {
  Harness h;
  h.submit(prompt("block1", "s1"));
  h.submit(prompt("x", "s1", R"(,"dependsOn":["y"])"));  // queued in s1 (y unknown yet)
  h.submit(prompt("y", "s2", R"(,"dependsOn":["x"])"));  // starts, waits for x
  EXPECT_FALSE(h.delivery.response_for("y"));
  h.executor.answer(0);  // x starts: y waits for x -> cycle
  EXPECT_EQ(h.delivery.response_for("x")->at("code"), "dependency_failed");
  // y's dependency failed with it.
  EXPECT_EQ(h.delivery.response_for("y")->at("code"), "dependency_failed");
}

TEST(CommandPipeline, DependencyWaitIsBounded) {
  PipelineOptions o;
  o.dependency_wait = std::chrono::milliseconds(500);
  Harness h(o);
  h.submit(prompt("slow", "s1"));
  h.submit(prompt("w", "s2", R"(,"dependsOn":["slow"])"));
  h.clock.advance(std::chrono::milliseconds(499));
  EXPECT_FALSE(h.delivery.response_for("w"));
  h.clock.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(h.delivery.response_for("w")->at("code"), "dependency_failed");
}

TEST(CommandPipeline, IfSessionVersionMustMatch) {
  Harness h;
  h.executor.versions["s"] = 3;
  h.submit(prompt("ok", "s", R"(,"ifSessionVersion":3)"));
  EXPECT_EQ(h.executor.calls.size(), 1u);
  h.executor.answer(0);  // bumps to 4
  h.submit(prompt("stale", "s", R"(,"ifSessionVersion":3)"));
  auto r = h.delivery.response_for("stale");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("code"), "version_mismatch");
  EXPECT_EQ(r->at("data")["currentVersion"], 4);
  EXPECT_EQ(h.executor.calls.size(), 1u);
}

TEST(CommandPipeline, TimeoutIsTerminalAndALateAnswerIsDropped) {
  PipelineOptions o;
  o.long_timeout = std::chrono::milliseconds(1000);
  Harness h(o);
  h.submit(prompt("t"));
  h.submit(prompt("next"));
  h.clock.advance(std::chrono::milliseconds(1000));
  auto r = h.delivery.response_for("t");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("code"), "timeout");
  EXPECT_EQ(r->at("timedOut"), true);
  ASSERT_EQ(h.executor.calls.size(), 2u) << "the lane moved on";
  h.executor.answer(0);  // late
  EXPECT_EQ(h.pipeline.stats().late_replies, 1u);
  h.submit(prompt("t"));
  EXPECT_EQ(h.delivery.response_for("t")->at("code"), "timeout") << "the stored outcome stays";
  EXPECT_EQ(h.delivery.response_for("t")->at("replayed"), true);
}

TEST(CommandPipeline, LifecycleEventsGoToTheIssuerOnly) {
  Harness h;
  h.submit(prompt("a"), 7);
  h.executor.answer(0);
  h.submit(prompt("a"), 8);  // replay: only command_finished
  std::vector<std::string> for7, for8;
  for (const auto& e : h.delivery.events) (e.conn == 7 ? for7 : for8).push_back(e.type);
  EXPECT_EQ(for7, (std::vector<std::string>{"command_accepted", "command_started", "command_finished"}));
  EXPECT_EQ(for8, (std::vector<std::string>{"command_finished"}));
}

TEST(CommandPipeline, HistoryFiltersBySessionAndId) {
  Harness h;
  h.submit(prompt("a", "s1"));
  h.submit(prompt("b", "s2"));
  h.executor.answer(0);
  auto all = command_history(h.store, "local", json::object());
  EXPECT_EQ(all["commands"].size(), 2u);
  auto s1 = command_history(h.store, "local", json{{"sessionIdFilter", "s1"}});
  ASSERT_EQ(s1["commands"].size(), 1u);
  EXPECT_EQ(s1["commands"][0]["commandId"], "a");
  EXPECT_EQ(s1["commands"][0]["state"], "finished");
  auto b = command_history(h.store, "local", json{{"commandId", "b"}});
  EXPECT_EQ(b["commands"][0]["state"], "running");
  EXPECT_EQ(command_history(h.store, "local", json{{"limit", 1}})["commands"].size(), 1u);
}

// Random interleavings of 10k commands over 20 sessions with duplicates and dependencies:
// every admitted command gets exactly one response, replays match byte for byte apart from
// "replayed", and the executor sees each unique command once.
TEST(CommandPipelineProperty, ExactlyOneResponsePerCommand) {
  for (unsigned seed = 1; seed <= 3; ++seed) {
    PipelineOptions o;
    o.max_pending_per_lane = 1000000;
    o.max_outcomes = 1000000;
    Harness h(o);
    std::mt19937 rng(seed);
    std::vector<std::string> sent_ids;  // unique ids, in order
    std::map<std::string, std::string> text_of;
    std::size_t submissions = 0;
    std::vector<std::size_t> open_calls;
    auto answer_some = [&] {
      // Answer a random subset of the calls that are waiting.
      for (std::size_t i = 0; i < h.executor.calls.size(); ++i) {
        if (h.executor.calls[i].reply && rng() % 3 == 0) {
          auto reply = std::move(h.executor.calls[i].reply);
          h.executor.calls[i].reply = nullptr;
          const auto& env = h.executor.calls[i].sub.envelope;
          reply(rng() % 10 == 0 ? protocol::error_response(env.type, env.id, ErrorCode::agent_exited, "x")
                                : protocol::success_response(env.type, env.id, json{{"i", i}}));
        }
      }
    };
    for (int n = 0; n < 10000; ++n) {
      int roll = rng() % 100;
      if (roll < 15 && !sent_ids.empty()) {
        // duplicate of an earlier command, same payload
        const auto& id = sent_ids[rng() % sent_ids.size()];
        h.submit(text_of[id], 1 + rng() % 3);
      } else {
        std::string id = "c" + std::to_string(n);
        std::string session = "s" + std::to_string(rng() % 20);
        std::string extra;
        if (roll >= 15 && roll < 30 && !sent_ids.empty())
          extra = R"(,"dependsOn":[")" + sent_ids[rng() % sent_ids.size()] + "\"]";
        text_of[id] = prompt(id, session, extra);
        sent_ids.push_back(id);
        h.submit(text_of[id], 1 + rng() % 3);
      }
      ++submissions;
      if (rng() % 4 == 0) answer_some();
      if (rng() % 50 == 0) h.clock.advance(std::chrono::milliseconds(rng() % 2000));
    }
    // Drain: answer everything, let timers fire.
    for (int round = 0; round < 100000 && h.pipeline.in_flight() > 0; ++round) {
      answer_some();
      h.clock.advance(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(h.pipeline.in_flight(), 0u);
    EXPECT_EQ(h.delivery.responses.size(), submissions) << "one response per submission";
    // Each unique command reached the executor at most once.
    std::set<std::string> executed(h.executor.executed.begin(), h.executor.executed.end());
    EXPECT_EQ(executed.size(), h.executor.executed.size());
    // Replays are byte-identical to the first answer but for "replayed" (ids are equal here).
    std::map<std::string, std::string> first_answer;
    for (const auto& [conn, text] : h.delivery.responses) {
      auto j = json::parse(text);
      std::string id = j["id"];
      std::string bare = text;
      auto pos = bare.find(R"(,"replayed":true)");
      if (pos != std::string::npos) bare.erase(pos, 16);
      auto [it, inserted] = first_answer.emplace(id, bare);
      if (!inserted) {
        EXPECT_NE(pos, std::string::npos) << "a second answer for " << id << " must be a replay";
        EXPECT_EQ(it->second, bare);
      }
    }
    EXPECT_EQ(first_answer.size(), sent_ids.size());
  }
}

// "Not now" and "not like this" rejections of admitted commands are answered but never
// stored: the same id can succeed on a retry.
TEST(CommandPipeline, RetryableRejectionsAreNotStored) {
  class Refusing : public FakeExecutor {
   public:
    void execute(const Submission& sub, Reply reply) override {
      ++runs;
      const auto& env = sub.envelope;
      if (runs == 1) {
        reply(protocol::error_response(env.type, env.id, ErrorCode::limit_reached, "full"));
      } else {
        reply(protocol::success_response(env.type, env.id));
      }
    }
    int runs = 0;
  };
  ManualClock clock;
  OutcomeStore store(clock, 100, std::chrono::seconds(60));
  Refusing executor;
  FakeVersions versions(executor);
  FakeAdmission admission;
  FakeDelivery delivery;
  CommandPipeline pipeline(clock, clock, {store, admission, versions, executor, delivery}, {});
  auto submit = [&] {
    Submission s;
    s.envelope = protocol::parse_envelope(R"({"type":"create_session","id":"c1","sessionId":"x"})").value();
    pipeline.submit(s);
  };
  submit();
  EXPECT_EQ(delivery.response(0)["code"], "limit_reached");
  submit();
  EXPECT_EQ(executor.runs, 2);
  EXPECT_EQ(delivery.response(1)["success"], true);
  EXPECT_FALSE(delivery.response(1).contains("replayed"));
  submit();
  EXPECT_EQ(delivery.response(2)["replayed"], true) << "a success is stored";
}

TEST(CommandPipeline, ConflictNamesTheIdentityThatClashed) {
  Harness h;
  h.submit(R"({"type":"prompt","id":"a","idempotencyKey":"k","sessionId":"s","message":"m"})");
  h.submit(R"({"type":"prompt","id":"b","idempotencyKey":"k","sessionId":"s","message":"other"})");
  auto r = h.delivery.response_for("b");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("code"), "conflict");
  EXPECT_NE(r->at("error").get<std::string>().find("idempotencyKey"), std::string::npos);
}

TEST(CommandPipeline, AdmissionRefusalIsAnsweredAndNothingRuns) {
  Harness h;
  h.admission.refuse = true;
  h.submit(prompt("a"));
  EXPECT_TRUE(h.executor.calls.empty());
  ASSERT_EQ(h.delivery.responses.size(), 1u);
  EXPECT_EQ(h.delivery.response(0)["code"], "rate_limited");
  EXPECT_TRUE(h.admission.finished.empty()) << "only admitted commands are reported finished";
  h.admission.refuse = false;
  h.submit(prompt("a"));
  ASSERT_EQ(h.executor.calls.size(), 1u) << "a refusal is not stored: the retry runs";
  h.executor.answer(0);
  EXPECT_EQ(h.admission.finished, std::vector<std::string>{"prompt:ok"});
}

TEST(CommandPipeline, TimeoutClassAndLaneComeFromTheCommandTable) {
  PipelineOptions o;
  o.read_timeout = std::chrono::milliseconds(100);
  o.default_timeout = std::chrono::milliseconds(1000);
  o.long_timeout = std::chrono::milliseconds(5000);
  Harness h(o);
  h.submit(R"({"type":"get_state","id":"r","sessionId":"a"})");
  h.submit(R"({"type":"set_auto_retry","id":"n","sessionId":"b","enabled":true})");
  h.submit(prompt("l", "c"));
  // abort bypasses the lane prompt holds.
  h.submit(R"({"type":"abort","id":"x","sessionId":"c"})");
  EXPECT_EQ(h.executor.calls.size(), 4u);
  h.clock.advance(std::chrono::milliseconds(150));
  ASSERT_TRUE(h.delivery.response_for("r"));
  EXPECT_EQ(h.delivery.response_for("r")->at("code"), "timeout");
  EXPECT_FALSE(h.delivery.response_for("n"));
  h.clock.advance(std::chrono::milliseconds(1000));
  ASSERT_TRUE(h.delivery.response_for("n"));
  EXPECT_FALSE(h.delivery.response_for("l"));
  h.clock.advance(std::chrono::milliseconds(5000));
  ASSERT_TRUE(h.delivery.response_for("l"));
  EXPECT_EQ(h.delivery.response_for("l")->at("code"), "timeout");
}
