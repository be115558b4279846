// Hibernation (DESIGN §11): idle agents are stopped, the session stays, the next command
// wakes it on the same session file. Real daemon, fake agent, small idle times.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

bool is_server_event(const json& j, const std::string& type, const std::string& session) {
  return j.value("type", "") == type && j.contains("data") &&
         j["data"].value("sessionId", "") == session;
}

json session_summary(WsClient& c, const std::string& session) {
  static int n = 0;
  auto list = c.request({{"type", "list_sessions"}, {"id", "list-" + std::to_string(++n)}});
  for (const auto& s : list["data"]["sessions"])
    if (s["sessionId"] == session) return s;
  ADD_FAILURE() << "no session " << session << " in " << list.dump();
  return json::object();
}

std::string state_of(WsClient& c, const std::string& session) {
  return session_summary(c, session).value("state", "");
}

bool wait_state(WsClient& c, const std::string& session, const std::string& state,
                std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (state_of(c, session) == state) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

pid_t agent_pid(WsClient& c, const std::string& session) {
  static int n = 0;
  auto r = c.request({{"type", "get_state"}, {"id", "pid-" + std::to_string(++n)}, {"sessionId", session}});
  EXPECT_EQ(r["success"], true) << r.dump();
  return r["data"].value("pid", -1);
}

}  // namespace

TEST(HibernatingDaemon, IdleSessionSleepsAndTheNextCommandWakesItWithItsConversation) {
  // No warm pool: the wake-up is a cold start (the pooled one is tested below).
  Daemon d({.args = {"--hibernate-after-ms", "300", "--warm-agents", "0"}});
  WsClient c(d.port());
  open_session(c, "h");
  auto run = run_prompt(c, "h", "hello there", "p1");
  ASSERT_FALSE(run.empty());
  std::uint64_t last_seq = run.back()["seq"];
  auto before = c.request({{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "h"}});
  ASSERT_EQ(before["success"], true);
  ASSERT_FALSE(before["data"]["messages"].empty());
  std::uint64_t version = before["sessionVersion"];
  pid_t pid = agent_pid(c, "h");

  // The creator stays subscribed: subscribers do not keep a session awake.
  auto slept = c.wait_for([](const json& j) { return is_server_event(j, "session_hibernated", "h"); }, 10s);
  ASSERT_TRUE(slept) << "no session_hibernated";
  EXPECT_FALSE(process_exists(pid));
  ASSERT_TRUE(d.wait_log("session_hibernated", 5s));

  // Reading the list, metrics and health never wakes it.
  auto summary = session_summary(c, "h");
  EXPECT_EQ(summary["state"], "hibernated");
  EXPECT_FALSE(summary.contains("pid"));
  auto metrics = c.request({{"type", "get_metrics"}, {"id", "gm"}});
  EXPECT_EQ(metrics["data"]["sessionsHibernated"], 1);
  EXPECT_EQ(metrics["data"]["hibernation"]["hibernations"], 1);
  EXPECT_EQ(metrics["data"]["agentsRunning"], 0);
  auto health = c.request({{"type", "health_check"}, {"id", "hc"}});
  EXPECT_EQ(health["data"]["status"], "ok") << health.dump();
  EXPECT_EQ(state_of(c, "h"), "hibernated");
  auto prom = http_get(d.port(), "/metrics");
  EXPECT_NE(prom.body.find("pi_server_sessions_hibernated 1"), std::string::npos);

  // Any other command wakes it first; the client sees only the answer.
  auto after = c.request({{"type", "get_messages"}, {"id", "m2"}, {"sessionId", "h"}});
  ASSERT_EQ(after["success"], true) << after.dump();
  EXPECT_EQ(after["data"]["messages"], before["data"]["messages"]);
  EXPECT_EQ(after["sessionVersion"], version);
  auto woken = c.seen_or_wait([](const json& j) { return is_server_event(j, "session_woken", "h"); }, 5s);
  ASSERT_TRUE(woken);
  EXPECT_TRUE((*woken)["data"]["wakeMs"].is_number_integer());
  EXPECT_EQ((*woken)["data"]["fromPool"], false);
  EXPECT_NE(agent_pid(c, "h"), pid);
  EXPECT_EQ(state_of(c, "h"), "idle");

  // seq continues across the sleep.
  auto run2 = run_prompt(c, "h", "again", "p2");
  ASSERT_FALSE(run2.empty());
  EXPECT_EQ(run2.front()["seq"].get<std::uint64_t>(), last_seq + 1);
  metrics = c.request({{"type", "get_metrics"}, {"id", "gm2"}});
  EXPECT_EQ(metrics["data"]["hibernation"]["wakes"], 1);
  EXPECT_EQ(metrics["data"]["hibernation"]["wakeTime"]["count"], 1);
  EXPECT_TRUE(d.wait_log("session_woken", 1s));
}

TEST(HibernatingDaemon, ABusySessionDoesNotSleep) {
  Daemon d({.args = {"--hibernate-after-ms", "200"}});
  WsClient c(d.port());
  open_session(c, "busy");
  auto r = c.request({{"type", "prompt"}, {"id", "p"}, {"sessionId", "busy"}, {"message", "hang"}});
  ASSERT_EQ(r["success"], true);
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(state_of(c, "busy"), "running");
  c.request({{"type", "abort"}, {"id", "a"}, {"sessionId", "busy"}});
  // Once the run is over it sleeps like any other.
  EXPECT_TRUE(wait_state(c, "busy", "hibernated", 10s));
}

TEST(HibernatingDaemon, NeverWithZero) {
  Daemon d({.args = {"--hibernate-after-ms", "0"}});
  WsClient c(d.port());
  open_session(c, "awake");
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(state_of(c, "awake"), "idle");
}

TEST(HibernatingDaemon, LiveAgentCapHibernatesTheLeastRecentlyUsed) {
  Daemon d({.args = {"--hibernate-after-ms", "0", "--max-live-agents", "2"}});
  WsClient c(d.port());
  open_session(c, "a");
  c.request({{"type", "create_session"}, {"id", "cb"}, {"sessionId", "b"}});
  // a was used after b: b is the least recently used when c comes.
  run_prompt(c, "a", "hi", "pa");
  auto rc = c.request({{"type", "create_session"}, {"id", "cc"}, {"sessionId", "c"}});
  ASSERT_EQ(rc["success"], true);
  EXPECT_TRUE(wait_state(c, "b", "hibernated", 5s));
  EXPECT_EQ(state_of(c, "a"), "idle");
  EXPECT_EQ(state_of(c, "c"), "idle");
  // Waking b puts the then least recently used (a) to sleep.
  auto r = c.request({{"type", "get_state"}, {"id", "gb"}, {"sessionId", "b"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  EXPECT_TRUE(wait_state(c, "a", "hibernated", 5s));
  EXPECT_EQ(state_of(c, "b"), "idle");
  EXPECT_EQ(state_of(c, "c"), "idle");
  // a counts as hibernated from the moment its agent is told to stop; its process goes a
  // moment later.
  json running;
  for (int i = 0; i < 100; ++i) {
    running = c.request({{"type", "get_metrics"}, {"id", "gm" + std::to_string(i)}})["data"]["agentsRunning"];
    if (running == 2) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(running, 2);
}

TEST(HibernatingDaemon, AFailedWakeAnswersTheCommandAndTheSessionCanWakeLater) {
  // A cold start that fails (a pooled wake-up that fails is tested below).
  Daemon d({.args = {"--hibernate-after-ms", "200", "--warm-agents", "0"}});
  WsClient c(d.port());
  open_session(c, "w");
  run_prompt(c, "w", "remember me", "p");
  ASSERT_TRUE(wait_state(c, "w", "hibernated", 10s));
  // The session's files are where its agent keeps them (a pooled agent's dir becomes the
  // session's).
  auto state = c.request({{"type", "list_session_files"}, {"id", "lf"}, {"sessionId", "w"}});
  ASSERT_TRUE(wait_state(c, "w", "hibernated", 10s));
  std::string current = state["data"].value("currentFile", "");
  ASSERT_FALSE(current.empty()) << state.dump();
  auto marker = std::filesystem::path(current).parent_path() / "fake-fail-start";
  std::ofstream(marker) << "x";

  auto r = c.request({{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "w"}}, 20s);
  EXPECT_EQ(r["success"], false);
  EXPECT_EQ(r["code"], "agent_exited") << r.dump();
  EXPECT_NE(r.value("error", "").find("wake"), std::string::npos) << r.dump();
  EXPECT_EQ(state_of(c, "w"), "hibernated");
  // The lane is free: the next command runs (and fails the same way).
  auto r2 = c.request({{"type", "get_state"}, {"id", "m2"}, {"sessionId", "w"}}, 20s);
  EXPECT_EQ(r2["code"], "agent_exited");
  auto metrics = c.request({{"type", "get_metrics"}, {"id", "gm"}});
  EXPECT_EQ(metrics["data"]["hibernation"]["wakeFailures"], 2);

  std::filesystem::remove(marker);
  auto r3 = c.request({{"type", "get_messages"}, {"id", "m3"}, {"sessionId", "w"}}, 20s);
  ASSERT_EQ(r3["success"], true) << r3.dump();
  EXPECT_FALSE(r3["data"]["messages"].empty());
}

TEST(HibernatingDaemon, ACommandThatComesWhileTheAgentStopsWaitsAndWakesIt) {
  Daemon d({.args = {"--hibernate-after-ms", "200", "--agent-env", "FAKE_AGENT_EXIT_DELAY_MS=700"}});
  WsClient c(d.port());
  open_session(c, "slow");
  run_prompt(c, "slow", "hi", "p");
  ASSERT_TRUE(d.wait_log("session_hibernating", 10s));
  EXPECT_EQ(state_of(c, "slow"), "hibernated");
  auto r = c.request({{"type", "get_messages"}, {"id", "m"}, {"sessionId", "slow"}}, 20s);
  ASSERT_EQ(r["success"], true) << r.dump();
  EXPECT_EQ(r["data"]["messages"].size(), 2u);
  // It went to sleep first, then woke for the command.
  EXPECT_TRUE(c.seen_or_wait([](const json& j) { return is_server_event(j, "session_hibernated", "slow"); }, 1s));
  EXPECT_TRUE(c.seen_or_wait([](const json& j) { return is_server_event(j, "session_woken", "slow"); }, 1s));
}

TEST(HibernatingDaemon, DeletingAHibernatedSessionNeedsNoWake) {
  Daemon d({.args = {"--hibernate-after-ms", "200"}});
  WsClient c(d.port());
  open_session(c, "del");
  ASSERT_TRUE(wait_state(c, "del", "hibernated", 10s));
  auto r = c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "del"}});
  EXPECT_EQ(r["success"], true);
  EXPECT_TRUE(d.logs_with_msg("session_waking").empty());
  auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
  EXPECT_TRUE(list["data"]["sessions"].empty());
}

// ---------------------------------------------------------------- warm pool

namespace {

json metrics_of(WsClient& c) {
  static int n = 0;
  return c.request({{"type", "get_metrics"}, {"id", "pm-" + std::to_string(++n)}})["data"];
}

bool wait_pool_ready(WsClient& c, int want, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (metrics_of(c)["warmPool"]["ready"] == want) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// A daemon that hibernates sessions after 300 ms and runs them in its own cwd or under `root`.
Daemon::Options hibernating_under(const std::string& root) {
  return {.args = {"--hibernate-after-ms", "300", "--workspace-root",
                   std::filesystem::current_path().string(), "--workspace-root", root}};
}

// Reads server_ready, waits for a pooled agent and creates session `id` from it in `cwd`.
void create_from_pool(WsClient& c, const std::string& id, const std::string& cwd) {
  ASSERT_TRUE(c.next());
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto r = c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", id}, {"cwd", cwd}});
  ASSERT_EQ(r["success"], true) << r.dump();
}

}  // namespace

TEST(WarmPool, CreateTakesAPooledAgentAndThePoolRefills) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());  // server_ready
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto r = c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", "p1"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  auto m = metrics_of(c);
  EXPECT_EQ(m["warmPool"]["hits"], 1);
  EXPECT_EQ(m["warmPool"]["misses"], 0);
  ASSERT_TRUE(d.wait_log("agent_from_pool", 1s));
  // The session works, and its conversation survives a restart of its agent.
  EXPECT_EQ(final_text(run_prompt(c, "p1", "stream 3", "p")), "w0 w1 w2 ");
  // Refilled in the background.
  EXPECT_TRUE(wait_pool_ready(c, 1, 10s));
  EXPECT_EQ(metrics_of(c)["agentsRunning"], 1) << "pooled agents are not sessions' agents";
}

TEST(WarmPool, AnotherCwdRepointsThePooledAgent) {
  TempDir other;
  // The pool's agents sit in the daemon's directory; the session wants another root.
  Daemon d({.args = {"--workspace-root", std::filesystem::current_path().string(), "--workspace-root", other.path()}});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto r = c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", "far"}, {"cwd", other.path()}});
  ASSERT_EQ(r["success"], true) << r.dump();
  EXPECT_EQ(metrics_of(c)["warmPool"]["hits"], 1);
  EXPECT_EQ(final_text(run_prompt(c, "far", "cwd", "p")), "cwd " + other.path());
  EXPECT_EQ(r["data"]["sessionInfo"]["cwd"], other.path());
  // Only the session's own file: the pool's warm-up file went with the switch.
  auto files = c.request({{"type", "list_session_files"}, {"id", "lf"}, {"sessionId", "far"}});
  ASSERT_EQ(files["success"], true) << files.dump();
  EXPECT_EQ(files["data"]["files"].size(), 1u) << files.dump();
}

TEST(WarmPool, SessionsWithTheirOwnFlagsBypassIt) {
  Daemon d;
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto r = c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", "own"},
                      {"model", "acme/special"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  auto m = metrics_of(c);
  EXPECT_EQ(m["warmPool"]["bypassed"], 1);
  EXPECT_EQ(m["warmPool"]["hits"], 0);
  EXPECT_EQ(m["warmPool"]["ready"], 1) << "the pooled agent is still there";
}

TEST(WarmPool, ZeroTurnsItOff) {
  Daemon d({.args = {"--warm-agents", "0"}});
  WsClient c(d.port());
  open_session(c, "cold");
  auto m = metrics_of(c);
  EXPECT_EQ(m["warmPool"]["ready"], 0);
  EXPECT_EQ(m["warmPool"]["hits"], 0);
  EXPECT_EQ(m["warmPool"]["misses"], 0);
}

TEST(WarmPool, APooledSessionHibernatesAndWakesOnItsOwnFiles) {
  TempDir other;
  Daemon d(hibernating_under(other.path()));
  WsClient c(d.port());
  ASSERT_NO_FATAL_FAILURE(create_from_pool(c, "pw", other.path()));
  run_prompt(c, "pw", "remember", "p");
  auto before = c.request({{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "pw"}});
  ASSERT_TRUE(wait_state(c, "pw", "hibernated", 10s));
  auto after = c.request({{"type", "get_messages"}, {"id", "m2"}, {"sessionId", "pw"}});
  ASSERT_EQ(after["success"], true) << after.dump();
  EXPECT_EQ(after["data"]["messages"], before["data"]["messages"]);
  EXPECT_EQ(final_text(run_prompt(c, "pw", "cwd", "p2")), "cwd " + other.path());
}

TEST(WarmPool, AWakeUpTakesAPooledAgentThatSwitchesToTheSessionsFile) {
  TempDir other;
  Daemon d(hibernating_under(other.path()));
  WsClient c(d.port());
  ASSERT_NO_FATAL_FAILURE(create_from_pool(c, "wk", other.path()));
  run_prompt(c, "wk", "remember this", "p");
  std::string file = c.request({{"type", "get_state"}, {"id", "s0"}, {"sessionId", "wk"}})["data"].value("sessionFile", "");
  ASSERT_FALSE(file.empty());
  auto before = c.request({{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "wk"}});
  ASSERT_FALSE(before["data"]["messages"].empty());
  std::uint64_t version = before["sessionVersion"];
  ASSERT_TRUE(wait_state(c, "wk", "hibernated", 10s));
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto after = c.request({{"type", "get_messages"}, {"id", "m2"}, {"sessionId", "wk"}});
  ASSERT_EQ(after["success"], true) << after.dump();
  EXPECT_EQ(after["data"]["messages"], before["data"]["messages"]);
  EXPECT_EQ(after["sessionVersion"], version);
  auto woken = c.seen_or_wait([](const json& j) { return is_server_event(j, "session_woken", "wk"); }, 5s);
  ASSERT_TRUE(woken);
  EXPECT_EQ((*woken)["data"]["fromPool"], true);
  auto from_pool = d.logs_with_msg("agent_from_pool");
  ASSERT_EQ(from_pool.size(), 2u) << "the create and the wake-up";
  EXPECT_EQ(agent_pid(c, "wk"), from_pool.back().value("pid", -2));
  auto m = metrics_of(c);
  EXPECT_EQ(m["hibernation"]["wakes"], 1);
  EXPECT_EQ(m["hibernation"]["wakesFromPool"], 1);
  EXPECT_EQ(m["warmPool"]["hits"], 2);
  // Tools run in the session's cwd, not the pool's, and the conversation goes on in its file.
  EXPECT_EQ(final_text(run_prompt(c, "wk", "cwd", "p2")), "cwd " + other.path());
  auto state = c.request({{"type", "get_state"}, {"id", "s"}, {"sessionId", "wk"}});
  EXPECT_EQ(state["data"].value("sessionFile", ""), file);

  // The agent dir of the first agent went with the wake-up; the pooled agent's dir goes with
  // the session.
  auto sessions_dir = std::filesystem::path(d.state_dir()) / "sessions";
  auto count_agent_dirs = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(sessions_dir))
      n += std::filesystem::exists(e.path() / "agent");
    return n;
  };
  EXPECT_EQ(count_agent_dirs(), 2) << "the session's and the refilled pool agent's";
  auto del = c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "wk"}});
  ASSERT_EQ(del["success"], true);
  EXPECT_EQ(count_agent_dirs(), 1) << "only the pool's";
  // The folder of the agent it woke on went too (its warm-up file first, then its agent
  // dir); the session's own folder stays with its conversation (no purge).
  int folders = 0;
  for (const auto& e : std::filesystem::directory_iterator(sessions_dir)) {
    (void)e;
    ++folders;
  }
  EXPECT_EQ(folders, 2) << "the session's folder and the refilled pool agent's";
}

TEST(WarmPool, ASessionWithItsOwnFlagsWakesCold) {
  Daemon d({.args = {"--hibernate-after-ms", "300"}});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto r = c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", "own"},
                      {"model", "acme/special"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  run_prompt(c, "own", "hi", "p");
  ASSERT_TRUE(wait_state(c, "own", "hibernated", 10s));
  auto after = c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "own"}});
  ASSERT_EQ(after["success"], true) << after.dump();
  auto woken = c.seen_or_wait([](const json& j) { return is_server_event(j, "session_woken", "own"); }, 5s);
  ASSERT_TRUE(woken);
  EXPECT_EQ((*woken)["data"]["fromPool"], false);
  EXPECT_EQ(metrics_of(c)["warmPool"]["ready"], 1) << "the pooled agent is still there";
}

TEST(WarmPool, AFailedPooledWakeAnswersTheCommandAndTheSessionCanWakeLater) {
  auto gone = std::make_unique<TempDir>();
  std::string cwd = gone->path();
  Daemon d(hibernating_under(std::filesystem::path(cwd).parent_path().string()));
  WsClient c(d.port());
  ASSERT_NO_FATAL_FAILURE(create_from_pool(c, "fw", cwd));
  run_prompt(c, "fw", "remember me", "p");
  ASSERT_TRUE(wait_state(c, "fw", "hibernated", 10s));
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  // The cwd named in the session file's header is gone: the pooled agent refuses to switch.
  gone.reset();
  auto failed = c.request({{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "fw"}}, 20s);
  EXPECT_EQ(failed["success"], false);
  EXPECT_EQ(failed["code"], "agent_exited") << failed.dump();
  EXPECT_NE(failed.value("error", "").find("did not wake"), std::string::npos) << failed.dump();
  ASSERT_TRUE(wait_state(c, "fw", "hibernated", 10s));
  EXPECT_EQ(metrics_of(c)["hibernation"]["wakeFailures"], 1);

  std::filesystem::create_directories(cwd);
  ASSERT_TRUE(wait_pool_ready(c, 1, 10s));
  auto woke = c.request({{"type", "get_messages"}, {"id", "m2"}, {"sessionId", "fw"}}, 20s);
  ASSERT_EQ(woke["success"], true) << woke.dump();
  EXPECT_FALSE(woke["data"]["messages"].empty());
  EXPECT_EQ(final_text(run_prompt(c, "fw", "cwd", "p2")), "cwd " + cwd);
  std::filesystem::remove_all(cwd);
}

// What pooled agents of an earlier run left behind (their agent dirs; the pool folder of a
// wake-up) goes at the next start; a pooled session's pi files stay.
TEST(WarmPool, LeftoversOfAnEarlierRunAreRemovedAtStart) {
  TempDir state;
  auto sessions = std::filesystem::path(state.path()) / "sessions";
  std::filesystem::create_directories(sessions / "pool-aaaa" / "agent");
  std::ofstream(sessions / "pool-aaaa" / "agent" / "settings.json") << "{}";
  std::filesystem::create_directories(sessions / "pool-bbbb" / "agent");
  std::ofstream(sessions / "pool-bbbb" / "2026-12-03T00-00-00-000Z_x.jsonl") << "{}\n";
  std::filesystem::create_directories(sessions / "s-other" / "agent");
  Daemon d({.state_dir = state.path()});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  EXPECT_FALSE(std::filesystem::exists(sessions / "pool-aaaa"));
  EXPECT_FALSE(std::filesystem::exists(sessions / "pool-bbbb" / "agent"));
  EXPECT_TRUE(std::filesystem::exists(sessions / "pool-bbbb" / "2026-12-03T00-00-00-000Z_x.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(sessions / "s-other" / "agent")) << "not a pool folder";
}
