// Hibernation without processes or sleeping: fake agents, ManualClock as Clock and Scheduler.
#include "session/hibernation.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "fakes.hpp"
#include "manual_clock.hpp"
#include "session/session_registry.hpp"

using namespace pi_server;
using namespace std::chrono_literals;
using nlohmann::json;
using pi_server::testing::FakeAgentChannel;
using pi_server::testing::FakeConnection;
using pi_server::testing::FakeLauncher;
using pi_server::testing::ManualClock;
namespace fs = std::filesystem;
using Dormancy = session::Session::Dormancy;

namespace {

struct Harness {
  explicit Harness(std::chrono::milliseconds after, std::size_t max_live = 0) {
    options.state_dir = fs::temp_directory_path() /
                        ("hibernation-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    options.hibernation.after = after;
    options.hibernation.max_live_agents = max_live;
    connections.add(client);
  }
  ~Harness() { fs::remove_all(options.state_dir); }

  std::shared_ptr<session::Session> create(const std::string& id) {
    bool ok = false;
    registry.create(id, agent::SessionLaunch{}, client->id(), local_principal(),
                    [&](const std::string&, Result<json> r) { ok = static_cast<bool>(r); });
    answer_last(launcher.agents.back());
    clock.run_due();
    EXPECT_TRUE(ok);
    return registry.find(id);
  }
  // Answers the newest command written to `agent`.
  static void answer_last(const std::shared_ptr<FakeAgentChannel>& agent, bool success = true) {
    auto cmd = agent->written_json(agent->written.size() - 1);
    json answer = {{"type", "response"}, {"id", cmd["id"]}, {"command", cmd["type"]},
                   {"success", success}, {"data", json::object()}};
    if (!success) answer["error"] = "boom";
    agent->say(answer);
  }
  std::size_t events_named(const std::string& type) const {
    std::size_t n = 0;
    for (const auto& c : client->controls) n += c.value("type", "") == type;
    return n;
  }

  static inline int counter = 0;
  ManualClock clock;
  FakeLauncher launcher;
  ServerOptions options;
  ConnectionRegistry connections;
  session::RelayStats stats;
  std::shared_ptr<FakeConnection> client = std::make_shared<FakeConnection>(7);
  session::SessionRegistry registry{clock, clock, launcher, options, connections, stats};
};

}  // namespace

TEST(Hibernation, StopsTheAgentOfASessionIdleForTheConfiguredTime) {
  Harness h(1000ms);
  auto s = h.create("s");
  auto agent = h.launcher.agents.back();
  h.clock.advance(999ms);
  EXPECT_TRUE(agent->stops.empty());
  h.clock.advance(2ms);
  ASSERT_EQ(agent->stops.size(), 1u) << "graceful stop asked";
  EXPECT_EQ(s->dormancy(), Dormancy::hibernating);
  EXPECT_EQ(s->summary()["state"], "hibernated");
  agent->exit_with({0, std::nullopt});
  EXPECT_EQ(s->dormancy(), Dormancy::hibernated);
  EXPECT_EQ(h.events_named("session_hibernated"), 1u);
  EXPECT_EQ(h.events_named("agent_exited"), 0u) << "not a crash";
  h.clock.advance(10s);
  EXPECT_EQ(h.launcher.agents.size(), 1u) << "no restart of a hibernated agent";
  EXPECT_EQ(h.registry.hibernation().stats().hibernations, 1u);
}

TEST(Hibernation, ActivityPostponesIt) {
  Harness h(1000ms);
  auto s = h.create("s");
  auto agent = h.launcher.agents.back();
  h.clock.advance(600ms);
  protocol::Envelope env;
  env.type = "get_state";
  env.spec = &protocol::spec_for(env.type);
  env.body = json{{"type", "get_state"}};
  bool answered = false;
  s->relay(env, [&](protocol::Response) { answered = true; });
  Harness::answer_last(agent);
  ASSERT_TRUE(answered);
  h.clock.advance(600ms);  // 1200 ms after creation, 600 after the last command
  EXPECT_TRUE(agent->stops.empty());
  h.clock.advance(500ms);
  EXPECT_EQ(agent->stops.size(), 1u);
}

TEST(Hibernation, ACommandWakesItAndWaitsForTheNewAgentsFirstAnswer) {
  Harness h(1000ms);
  auto s = h.create("s");
  h.clock.advance(1001ms);
  h.launcher.agents.back()->exit_with({0, std::nullopt});
  ASSERT_EQ(s->dormancy(), Dormancy::hibernated);

  std::optional<Status> woken;
  h.registry.ensure_awake(s, [&](Status st) { woken = st; });
  ASSERT_EQ(h.launcher.agents.size(), 2u) << "a new agent started";
  EXPECT_EQ(s->dormancy(), Dormancy::waking);
  EXPECT_FALSE(woken);
  // A second command during the wake-up waits for the same one.
  std::optional<Status> second;
  h.registry.ensure_awake(s, [&](Status st) { second = st; });
  EXPECT_EQ(h.launcher.agents.size(), 2u);
  h.clock.advance(300ms);
  Harness::answer_last(h.launcher.agents.back());
  ASSERT_TRUE(woken && *woken);
  ASSERT_TRUE(second && *second);
  EXPECT_EQ(s->dormancy(), Dormancy::awake);
  ASSERT_EQ(h.events_named("session_woken"), 1u);
  for (const auto& c : h.client->controls)
    if (c.value("type", "") == "session_woken") {
      EXPECT_EQ(c["data"]["wakeMs"], 300);
    }
  EXPECT_EQ(h.registry.hibernation().stats().wakes, 1u);
  // Same session files: the launch is the session's own.
  EXPECT_EQ(h.launcher.launches[1].session_dir, h.launcher.launches[0].session_dir);
  // And it can sleep again.
  h.clock.advance(1001ms);
  EXPECT_EQ(h.launcher.agents.back()->stops.size(), 1u);
}

TEST(Hibernation, AFailedWakeAnswersEveryWaiterAndLeavesItAsleep) {
  Harness h(1000ms);
  auto s = h.create("s");
  h.clock.advance(1001ms);
  h.launcher.agents.back()->exit_with({0, std::nullopt});

  h.launcher.fail = true;
  std::optional<Status> woken;
  h.registry.ensure_awake(s, [&](Status st) { woken = st; });
  ASSERT_TRUE(woken);
  EXPECT_FALSE(*woken);
  EXPECT_EQ(woken->code(), ErrorCode::agent_exited);
  EXPECT_EQ(s->dormancy(), Dormancy::hibernated);

  // The agent starts but dies before answering.
  h.launcher.fail = false;
  woken.reset();
  h.registry.ensure_awake(s, [&](Status st) { woken = st; });
  h.launcher.agents.back()->exit_with({1, std::nullopt});
  ASSERT_TRUE(woken);
  EXPECT_FALSE(*woken);
  EXPECT_EQ(s->dormancy(), Dormancy::hibernated);
  EXPECT_EQ(h.events_named("agent_exited"), 0u);
  EXPECT_EQ(h.registry.hibernation().stats().wake_failures, 2u);
  h.clock.advance(10s);
  EXPECT_EQ(h.launcher.agents.size(), 2u) << "no restart";
}

TEST(Hibernation, ACommandDuringTheStopWakesItOnceTheOldAgentIsGone) {
  Harness h(1000ms);
  auto s = h.create("s");
  h.clock.advance(1001ms);
  ASSERT_EQ(s->dormancy(), Dormancy::hibernating);
  std::optional<Status> woken;
  h.registry.ensure_awake(s, [&](Status st) { woken = st; });
  EXPECT_EQ(h.launcher.agents.size(), 1u) << "not before the old agent is gone";
  h.launcher.agents.back()->exit_with({0, std::nullopt});
  h.clock.run_due();
  ASSERT_EQ(h.launcher.agents.size(), 2u);
  Harness::answer_last(h.launcher.agents.back());
  ASSERT_TRUE(woken && *woken);
}

TEST(Hibernation, TheLiveAgentCapPutsTheLeastRecentlyUsedToSleep) {
  Harness h(0ms, 2);
  auto a = h.create("a");
  h.clock.advance(10ms);
  auto b = h.create("b");
  h.clock.advance(10ms);
  EXPECT_TRUE(h.launcher.agents[0]->stops.empty());
  auto c = h.create("c");
  EXPECT_EQ(h.launcher.agents[0]->stops.size(), 1u) << "a was used least recently";
  EXPECT_TRUE(h.launcher.agents[1]->stops.empty());
  EXPECT_TRUE(h.launcher.agents[2]->stops.empty());
}

TEST(Hibernation, ZeroMeansNever) {
  Harness h(0ms);
  auto s = h.create("s");
  h.clock.advance(std::chrono::hours(24));
  EXPECT_TRUE(h.launcher.agents.back()->stops.empty());
  EXPECT_EQ(h.clock.pending_timers(), 0u);
}
