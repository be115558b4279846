// SessionRegistry without processes or sleeping: fake agents, ManualClock as Clock and
// Scheduler, a real ConnectionRegistry with a recording connection.
#include "session/session_registry.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "fakes.hpp"
#include "manual_clock.hpp"

using namespace pi_server;
using namespace std::chrono_literals;
using nlohmann::json;
using pi_server::testing::FakeConnection;
using pi_server::testing::FakeLauncher;
using pi_server::testing::ManualClock;
namespace fs = std::filesystem;

namespace {

class RecordingFeedback : public session::ProviderFeedback {
 public:
  void on_provider_result(const std::string& provider, session::ProviderResult r) override {
    results.emplace_back(provider, r);
  }
  void on_run_finished(const std::string&, std::chrono::steady_clock::duration) override {}
  std::vector<std::pair<std::string, session::ProviderResult>> results;
};

struct Harness {
  Harness() {
    options.state_dir = fs::temp_directory_path() /
                        ("registry-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    options.max_sessions = 2;
    options.agent.restart_backoff = 500ms;
    registry.set_provider_feedback(&feedback);
    connections.add(client);
  }
  ~Harness() { fs::remove_all(options.state_dir); }

  // Creates a session and answers its agent's first get_state (unless `answer` is false).
  Result<json> create(const std::string& id, bool answer = true,
                      const Principal& owner = local_principal()) {
    std::optional<Result<json>> out;
    registry.create(id, agent::SessionLaunch{}, client->id(), owner,
                    [&](const std::string&, Result<json> r) { out.emplace(std::move(r)); });
    if (!out && answer) answer_probe(launcher.agents.back());
    clock.run_due();
    if (!out) return Status::error("no answer yet");
    return std::move(*out);
  }
  static void answer_probe(const std::shared_ptr<pi_server::testing::FakeAgentChannel>& agent,
                           bool success = true) {
    auto probe = agent->written_json(agent->written.size() - 1);
    json data = {{"sessionFile", "/tmp/x.jsonl"},
                 {"sessionId", "pi-1"},
                 {"model", {{"provider", "acme"}, {"id", "m1"}}}};
    json answer = {{"type", "response"}, {"id", probe["id"]}, {"command", "get_state"},
                   {"success", success}};
    if (success) answer["data"] = data; else answer["error"] = "boom";
    agent->say(answer);
  }
  std::vector<std::string> events_named(const std::string& type) const {
    std::vector<std::string> out;
    for (const auto& c : client->controls)
      if (c.value("type", "") == type) out.push_back(c.dump());
    return out;
  }

  static inline int counter = 0;
  ManualClock clock;
  FakeLauncher launcher;
  ServerOptions options;
  ConnectionRegistry connections;
  session::RelayStats stats;
  RecordingFeedback feedback;
  std::shared_ptr<FakeConnection> client = std::make_shared<FakeConnection>(7);
  session::SessionRegistry registry{clock, clock, launcher, options, connections, stats};
};

}  // namespace

TEST(SessionRegistry, CreateWaitsForTheAgentsFirstAnswer) {
  Harness h;
  std::optional<Result<json>> out;
  h.registry.create("s1", agent::SessionLaunch{}, h.client->id(), local_principal(),
                    [&](const std::string&, Result<json> r) { out.emplace(std::move(r)); });
  ASSERT_EQ(h.launcher.agents.size(), 1u);
  EXPECT_FALSE(out) << "no answer before the agent answered get_state";
  EXPECT_EQ(h.launcher.agents[0]->written_json(0)["type"], "get_state");
  EXPECT_TRUE(h.registry.contains("s1"));
  Harness::answer_probe(h.launcher.agents[0]);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ((**out)["sessionId"], "s1");
  EXPECT_EQ((**out)["sessionFile"], "/tmp/x.jsonl");
  EXPECT_EQ((**out)["model"], "acme/m1");
  EXPECT_TRUE(h.registry.find("s1")->is_subscribed(7)) << "the creator is subscribed";
  EXPECT_TRUE(fs::is_directory(h.options.state_dir / "sessions" / "s1" / "agent"));
  EXPECT_EQ(h.launcher.launches[0].agent_dir, h.options.state_dir / "sessions" / "s1" / "agent");
}

TEST(SessionRegistry, CreateRefusalsCarryTheirWireCode) {
  Harness h;
  ASSERT_TRUE(h.create("a"));
  auto dup = h.create("a");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.status().code(), ErrorCode::session_exists);
  ASSERT_TRUE(h.create("b"));
  auto over = h.create("c");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.status().code(), ErrorCode::limit_reached);
  EXPECT_EQ(h.launcher.launches.size(), 2u) << "refused creates start no agent";
}

TEST(SessionRegistry, AgentThatCannotStartOrAnswerLeavesNoSession) {
  Harness h;
  h.launcher.fail = true;
  auto r = h.create("a");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), ErrorCode::agent_exited);
  EXPECT_FALSE(h.registry.contains("a"));
  h.launcher.fail = false;
  std::optional<Result<json>> out;
  h.registry.create("b", agent::SessionLaunch{}, 7, local_principal(), [&](const std::string&, Result<json> x) { out.emplace(std::move(x)); });
  Harness::answer_probe(h.launcher.agents.back(), /*success=*/false);
  ASSERT_TRUE(out);
  EXPECT_FALSE(*out);
  EXPECT_EQ(out->status().code(), ErrorCode::agent_exited);
  EXPECT_FALSE(h.registry.contains("b"));
}

TEST(SessionRegistry, RemoveAnswersOnlyOnceTheAgentIsGone) {
  Harness h;
  ASSERT_TRUE(h.create("a"));
  bool removed = false;
  ASSERT_TRUE(h.registry.remove("a", [&] { removed = true; }));
  EXPECT_FALSE(h.registry.contains("a")) << "lookups fail at once";
  EXPECT_EQ(h.registry.stopping(), 1u);
  EXPECT_EQ(h.launcher.agents[0]->stops.size(), 1u) << "graceful stop asked";
  h.clock.run_due();
  EXPECT_FALSE(removed);
  h.launcher.agents[0]->exit_with({0, std::nullopt});
  h.clock.run_due();
  EXPECT_TRUE(removed);
  EXPECT_EQ(h.registry.stopping(), 0u);
  EXPECT_FALSE(h.registry.remove("a", [] {}));
}

TEST(SessionRegistry, CrashedAgentIsRestartedAfterBackoff) {
  Harness h;
  ASSERT_TRUE(h.create("a"));
  h.launcher.agents[0]->exit_with({std::nullopt, 9});
  auto exited = h.events_named("agent_exited");
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_NE(exited[0].find("\"restarting\":true"), std::string::npos);
  EXPECT_EQ(h.launcher.agents.size(), 1u) << "not before the backoff";
  h.clock.advance(499ms);
  EXPECT_EQ(h.launcher.agents.size(), 1u);
  h.clock.advance(600ms);
  ASSERT_EQ(h.launcher.agents.size(), 2u);
  EXPECT_EQ(h.events_named("agent_restarted").size(), 1u);
  EXPECT_EQ(h.registry.agent_restarts(), 1u);
}

TEST(SessionRegistry, StopAllWaitsForEveryAgentAndRestartsNone) {
  Harness h;
  ASSERT_TRUE(h.create("a"));
  ASSERT_TRUE(h.create("b"));
  bool all_stopped = false;
  h.registry.stop_all([&] { all_stopped = true; });
  EXPECT_EQ(h.registry.size(), 0u);
  h.launcher.agents[0]->exit_with({0, std::nullopt});
  h.clock.run_due();
  EXPECT_FALSE(all_stopped);
  h.launcher.agents[1]->exit_with({0, std::nullopt});
  h.clock.advance(60s);
  EXPECT_TRUE(all_stopped);
  EXPECT_EQ(h.launcher.agents.size(), 2u) << "no restart during shutdown";
}

TEST(SessionRegistry, VersionsAndProvidersAreLookedUpBySession) {
  Harness h;
  h.options.agent.default_model = "acme/m1";
  ASSERT_TRUE(h.create("a"));
  const Principal& me = local_principal();
  EXPECT_EQ(h.registry.session_version("a", me), 0u);
  EXPECT_EQ(h.registry.session_version("nope", me), std::nullopt);
  EXPECT_EQ(h.registry.provider_of("a", me), "acme");
  EXPECT_EQ(h.registry.provider_of("nope", me), "");
  // What the agent reports about its provider reaches the feedback (the breakers).
  h.launcher.agents[0]->say(json{{"type", "message_end"},
                                 {"message", {{"role", "assistant"}, {"provider", "acme"},
                                              {"stopReason", "error"}}}});
  ASSERT_EQ(h.feedback.results.size(), 1u);
  EXPECT_EQ(h.feedback.results[0].second, session::ProviderResult::failure);
}

TEST(SessionRegistry, ASessionIsSeenOnlyByItsOwnerAndAdmins) {
  Harness h;
  h.options.agent.default_model = "acme/m1";
  const Principal alice{"alice", false}, bob{"bob", false}, root{"root", true};
  ASSERT_TRUE(h.create("a", true, alice));
  EXPECT_EQ(h.registry.find("a")->owner(), "alice");
  EXPECT_TRUE(h.registry.find_for("a", alice));
  EXPECT_TRUE(h.registry.find_for("a", root));
  EXPECT_FALSE(h.registry.find_for("a", bob));
  // To bob it does not exist: no version, no provider (so no breaker answers for it).
  EXPECT_EQ(h.registry.session_version("a", bob), std::nullopt);
  EXPECT_EQ(h.registry.provider_of("a", bob), "");
  EXPECT_TRUE(h.registry.hidden_from("a", bob));
  EXPECT_FALSE(h.registry.hidden_from("a", alice));
  EXPECT_FALSE(h.registry.hidden_from("nope", bob)) << "nothing to hide";
  EXPECT_EQ(h.registry.summaries(alice).size(), 1u);
  EXPECT_EQ(h.registry.summaries(bob).size(), 0u);
  EXPECT_EQ(h.registry.summaries(root).size(), 1u);
}

TEST(SessionRegistry, SessionsPerPrincipalAreCapped) {
  Harness h;
  h.options.max_sessions = 10;
  h.options.max_sessions_per_principal = 1;
  const Principal alice{"alice", false}, bob{"bob", false};
  ASSERT_TRUE(h.create("a1", true, alice));
  auto over = h.create("a2", true, alice);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.status().code(), ErrorCode::limit_reached);
  EXPECT_TRUE(h.create("b1", true, bob)) << "the cap is per principal";
  EXPECT_EQ(h.registry.count_owned_by("alice"), 1u);
}
