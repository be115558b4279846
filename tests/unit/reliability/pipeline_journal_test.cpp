// The pipeline with an outcome journal: a stored command starts only once its admission is
// durable and is answered only once its outcome is; order within a lane holds.
#include <gtest/gtest.h>

#include "manual_clock.hpp"
#include "reliability/command_pipeline.hpp"

using namespace pi_server;
using namespace pi_server::reliability;
using nlohmann::json;
using pi_server::testing::ManualClock;

namespace {

// Durable when the test says so (commit()), in write order, like a group commit.
class ManualJournal : public OutcomeJournal {
 public:
  void admitted(OutcomeRecord& r, Durable d) override {
    writes.push_back("admit " + r.client_id.value_or("?"));
    pending.push_back(std::move(d));
  }
  void finished(const OutcomeRecord& r, const protocol::Response& resp, Durable d) override {
    writes.push_back("finish " + r.client_id.value_or("?"));
    pending.push_back(std::move(d));
  }
  void forgotten(const OutcomeRecord& r, Durable d) override {
    writes.push_back("forget " + r.client_id.value_or("?"));
    pending.push_back(std::move(d));
  }
  void commit() {
    auto batch = std::move(pending);
    pending.clear();
    for (auto& d : batch) d();
  }
  std::vector<std::string> writes;
  std::vector<Durable> pending;
};

class Exec : public Executor {
 public:
  void execute(const Submission& sub, Reply reply) override {
    started.push_back(sub.envelope.id.value_or("-"));
    replies.push_back(std::move(reply));
  }
  void hold(const Submission& sub) override { ++holds; }
  void release(const Submission& sub) override { ++releases; }
  std::vector<std::string> started;
  std::vector<Reply> replies;
  int holds = 0, releases = 0;
};

class Admit : public AdmissionControl {
 public:
  std::optional<protocol::Response> admit(const Submission&) override { return std::nullopt; }
  void on_finished(const Submission&, const protocol::Response&) override {}
};

class Versions : public SessionVersions {
 public:
  std::optional<std::uint64_t> session_version(const std::string&, const Principal&) const override {
    return 0;
  }
};

class Sink : public Delivery {
 public:
  void deliver(std::uint64_t, const protocol::Response& r) override {
    answered.push_back(r.id.value_or("-"));
  }
  void deliver_event(std::uint64_t, std::string_view, const json&) override {}
  std::vector<std::string> answered;
};

struct Harness {
  Harness() : store(clock, 100, std::chrono::seconds(60)),
              pipeline(clock, clock, {store, admit, versions, exec, sink, &journal}, {}) {}
  void submit(const std::string& text) {
    Submission s;
    s.envelope = protocol::parse_envelope(text).value();
    pipeline.submit(std::move(s));
  }
  ManualClock clock;
  OutcomeStore store;
  ManualJournal journal;
  Exec exec;
  Admit admit;
  Versions versions;
  Sink sink;
  CommandPipeline pipeline;
};

std::string get_state(const std::string& id) {
  return R"({"type":"get_state","sessionId":"s")" + (id.empty() ? std::string() : R"(,"id":")" + id + "\"") + "}";
}

}  // namespace

TEST(PipelineJournal, StartsOnlyOnceAdmissionIsDurableAndAnswersOnlyOnceOutcomeIs) {
  Harness h;
  h.submit(get_state("a"));
  EXPECT_TRUE(h.exec.started.empty()) << "not started before its admission is on disk";
  EXPECT_EQ(h.pipeline.in_flight(), 1u);
  h.journal.commit();
  ASSERT_EQ(h.exec.started, std::vector<std::string>{"a"});
  h.exec.replies[0](protocol::success_response("get_state", "a"));
  EXPECT_TRUE(h.sink.answered.empty()) << "no response before its outcome is on disk";
  EXPECT_EQ(h.exec.holds, 1);
  // A duplicate meanwhile waits for the same outcome.
  h.submit(get_state("a"));
  EXPECT_TRUE(h.sink.answered.empty());
  h.journal.commit();
  EXPECT_EQ(h.sink.answered, (std::vector<std::string>{"a", "a"}));
  EXPECT_EQ(h.exec.releases, 1);
  EXPECT_EQ(h.journal.writes, (std::vector<std::string>{"admit a", "finish a"}));
  EXPECT_EQ(h.pipeline.in_flight(), 0u);
}

TEST(PipelineJournal, CommandsWithoutIdKeepTheirPlaceBehindJournaledOnes) {
  Harness h;
  h.submit(get_state("a"));
  h.submit(get_state(""));  // no id: not journaled, but admitted after "a"
  h.journal.commit();
  ASSERT_EQ(h.exec.started, std::vector<std::string>{"a"});
  h.exec.replies[0](protocol::success_response("get_state", "a"));
  h.journal.commit();
  ASSERT_EQ(h.exec.started, (std::vector<std::string>{"a", "-"})) << "lane order kept";
}

TEST(PipelineJournal, RetryableRejectionIsForgottenNotStored) {
  Harness h;
  h.submit(get_state("a"));
  h.journal.commit();
  h.exec.replies[0](protocol::error_response("get_state", "a", ErrorCode::limit_reached, "full"));
  h.journal.commit();
  EXPECT_EQ(h.journal.writes.back(), "forget a");
  h.submit(get_state("a"));
  h.journal.commit();
  EXPECT_EQ(h.exec.started.size(), 2u) << "the same id runs again";
}

TEST(PipelineJournal, RestoredOutcomeIsReplayedWithoutRunning) {
  Harness h;
  OutcomeRecord r;
  r.principal = "local";
  auto env = protocol::parse_envelope(get_state("old")).value();
  r.fingerprint = fingerprint(env);
  r.command = "get_state";
  r.session_id = "s";
  r.client_id = "old";
  r.done = true;
  r.response = protocol::success_response("get_state", "old", json{{"x", 1}});
  r.finished_at = h.clock.system_now();
  h.store.restore(std::move(r));
  h.submit(get_state("old"));
  EXPECT_TRUE(h.exec.started.empty());
  EXPECT_EQ(h.sink.answered, std::vector<std::string>{"old"});
  EXPECT_TRUE(h.journal.writes.empty()) << "a replay writes nothing";
}
