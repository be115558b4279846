// Agents as real child processes: isolation, failure, deletion and daemon exit.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

pid_t agent_pid(WsClient& c, const std::string& session) {
  auto r = c.request({{"type", "get_state"}, {"id", "pid-" + session}, {"sessionId", session}});
  return r["data"]["pid"].get<pid_t>();
}

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_exists(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !process_exists(pid);
}

pid_t process_group(pid_t pid) { return ::getpgid(pid); }

}  // namespace

TEST(AgentLifecycle, AgentRunsInItsOwnProcessGroupWithOnlyStdioFds) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "fd");
  pid_t pid = agent_pid(c, "fd");
  EXPECT_EQ(process_group(pid), pid);
  EXPECT_NE(process_group(pid), process_group(d.pid()));
  auto events = run_prompt(c, "fd", "fds", "p");
  EXPECT_EQ(final_text(events), "fds: 0,1,2");
}

TEST(AgentLifecycle, AgentEnvironmentIsAllowListed) {
  Daemon d({.args = {"--agent-env", "GIVEN=yes"}, .env = {"SECRET_FROM_DAEMON=leak"}});
  WsClient c(d.port());
  open_session(c, "env");
  EXPECT_EQ(final_text(run_prompt(c, "env", "env SECRET_FROM_DAEMON", "p1")),
            "env SECRET_FROM_DAEMON unset");
  EXPECT_EQ(final_text(run_prompt(c, "env", "env GIVEN", "p2")), "env GIVEN=yes");
  EXPECT_EQ(final_text(run_prompt(c, "env", "env PI_OFFLINE", "p3")), "env PI_OFFLINE=1");
}

TEST(AgentLifecycle, DeleteSessionLeavesNoAgentBehind) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "del");
  pid_t pid = agent_pid(c, "del");
  ASSERT_TRUE(process_exists(pid));
  auto r = c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "del"}});
  EXPECT_EQ(r["success"], true);
  // The response is sent once the agent has been reaped.
  EXPECT_FALSE(process_exists(pid));
  auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
  EXPECT_TRUE(list["data"]["sessions"].empty());
  auto again = c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "del"}});
  EXPECT_EQ(again["code"], "session_not_found");
}

TEST(AgentLifecycle, DeleteMidRunStopsTheAgent) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "busy");
  pid_t pid = agent_pid(c, "busy");
  c.request({{"type", "prompt"}, {"id", "p"}, {"sessionId", "busy"}, {"message", "hang"}});
  auto r = c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "busy"}});
  EXPECT_EQ(r["success"], true);
  EXPECT_FALSE(process_exists(pid));
}

TEST(AgentLifecycle, DaemonSigtermStopsEveryAgentAndExitsZero) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "a");
  c.request({{"type", "create_session"}, {"id", "cb"}, {"sessionId", "b"}});
  c.request({{"type", "create_session"}, {"id", "cc"}, {"sessionId", "c"}});
  std::vector<pid_t> pids = {agent_pid(c, "a"), agent_pid(c, "b"), agent_pid(c, "c")};
  c.request({{"type", "prompt"}, {"id", "p"}, {"sessionId", "a"}, {"message", "hang"}});
  EXPECT_EQ(d.signal_and_wait(SIGTERM, std::chrono::seconds(15)), 0);
  for (pid_t pid : pids) EXPECT_TRUE(wait_gone(pid, std::chrono::seconds(2))) << pid;
  EXPECT_TRUE(c.wait_for([](const json& j) { return j.value("type", "") == "server_shutdown"; },
                         std::chrono::seconds(2)));
}

TEST(AgentLifecycle, DaemonSigkillStillLeavesNoAgentRunningLong) {
  // Not a guarantee pi-server can give for SIGKILL of itself; documented. This test pins the
  // behaviour we do give: agents see EOF on stdin and exit on their own.
  Daemon d;
  WsClient c(d.port());
  open_session(c, "k");
  pid_t pid = agent_pid(c, "k");
  d.signal_and_wait(SIGKILL, std::chrono::seconds(5));
  EXPECT_TRUE(wait_gone(pid, std::chrono::seconds(5)));
}

TEST(AgentLifecycle, AgentKilledMidPromptIsRestartedAndTheConversationContinues) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "k");
  run_prompt(c, "k", "stream 3", "first");
  pid_t pid = agent_pid(c, "k");
  c.request({{"type", "prompt"}, {"id", "p2"}, {"sessionId", "k"}, {"message", "slow 100 50"}});
  ASSERT_TRUE(c.wait_for([](const json& j) { return is_event(j, "k", "message_update"); }));
  // A stopped agent cannot answer: this get_state is pending when the agent dies.
  ::kill(pid, SIGSTOP);
  c.send({{"type", "get_state"}, {"id", "pending"}, {"sessionId", "k"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(pid, SIGKILL);
  auto r = c.wait_for([](const json& j) { return is_response(j, "pending"); });
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["success"], false);
  EXPECT_EQ((*r)["code"], "agent_exited");
  auto exited = c.wait_for([](const json& j) { return j.value("type", "") == "agent_exited"; });
  ASSERT_TRUE(exited);
  EXPECT_EQ((*exited)["data"]["sessionId"], "k");
  EXPECT_EQ((*exited)["data"]["signal"], SIGKILL);
  EXPECT_EQ((*exited)["data"]["restarting"], true);
  auto restarted = c.wait_for([](const json& j) { return j.value("type", "") == "agent_restarted"; });
  ASSERT_TRUE(restarted);
  EXPECT_NE((*restarted)["data"]["pid"], pid);
  EXPECT_FALSE(process_exists(pid));
  auto messages = c.request({{"type", "get_messages"}, {"id", "m"}, {"sessionId", "k"}});
  ASSERT_EQ(messages["success"], true);
  const auto& list = messages["data"]["messages"];
  ASSERT_GE(list.size(), 2u);
  EXPECT_EQ(list[0]["role"], "user");
  EXPECT_EQ(list[0]["content"][0]["text"], "stream 3");
  EXPECT_EQ(list[1]["role"], "assistant");
  // And it keeps working, with the event sequence unbroken across the restart.
  run_prompt(c, "k", "stream 2", "third");
  expect_contiguous_seq(session_events(c, "k"));
}

TEST(AgentLifecycle, RestartsStopAtTheCap) {
  Daemon d({.args = {"--agent-max-restarts", "1"}});
  WsClient c(d.port());
  open_session(c, "cap");
  c.request({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "cap"}, {"message", "crash"}});
  auto first = c.wait_for([](const json& j) { return j.value("type", "") == "agent_exited"; });
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["data"]["restarting"], true);
  EXPECT_EQ((*first)["data"]["exitCode"], 3);
  ASSERT_TRUE(c.wait_for([](const json& j) { return j.value("type", "") == "agent_restarted"; }));
  c.request({{"type", "prompt"}, {"id", "c2"}, {"sessionId", "cap"}, {"message", "crash"}});
  auto second = c.wait_for([](const json& j) { return j.value("type", "") == "agent_exited"; });
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)["data"]["restarting"], false);
  auto r = c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "cap"}});
  EXPECT_EQ(r["code"], "agent_exited");
  // The session itself is still there (and deletable).
  EXPECT_EQ(c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "cap"}})["success"], true);
}

TEST(AgentLifecycle, NoRestartWhenDisabled) {
  Daemon d({.args = {"--no-agent-restart"}});
  WsClient c(d.port());
  open_session(c, "nr");
  c.request({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "nr"}, {"message", "crash"}});
  auto exited = c.wait_for([](const json& j) { return j.value("type", "") == "agent_exited"; });
  ASSERT_TRUE(exited);
  EXPECT_EQ((*exited)["data"]["restarting"], false);
}

TEST(AgentLifecycle, AgentThatCannotStartFailsCreateSession) {
  {
    Daemon d({.args = {"--agent-command", "/nonexistent/agent"}, .use_fake_agent = false});
    WsClient c(d.port());
    ASSERT_TRUE(c.next());
    auto r = c.request({{"type", "create_session"}, {"id", "c"}, {"sessionId", "x"}});
    EXPECT_EQ(r["code"], "agent_exited");
    auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
    EXPECT_TRUE(list["data"]["sessions"].empty());
  }
  {
    Daemon d({.args = {"--agent-env", "FAKE_AGENT_FAIL_START=1"}});
    WsClient c(d.port());
    ASSERT_TRUE(c.next());
    auto r = c.request({{"type", "create_session"}, {"id", "c"}, {"sessionId", "x"}});
    EXPECT_EQ(r["code"], "agent_exited");
    EXPECT_TRUE(d.wait_log("agent_stderr", std::chrono::seconds(5)));
    auto list = c.request({{"type", "list_sessions"}, {"id", "l"}});
    EXPECT_TRUE(list["data"]["sessions"].empty());
  }
}

TEST(AgentLifecycle, OverlongAgentLineIsDroppedWithALogLine) {
  Daemon d({.args = {"--max-agent-line-bytes", "100000"}});
  WsClient c(d.port());
  open_session(c, "big");
  auto events = run_prompt(c, "big", "big 200000", "p");
  EXPECT_TRUE(final_text(events).empty()) << "message_end was over the limit";
  expect_contiguous_seq(session_events(c, "big"));
  EXPECT_TRUE(d.wait_log("agent_line_too_long", std::chrono::seconds(5)));
}

TEST(AgentLifecycle, LargeAnswerLinesGoThrough) {
  Daemon d;
  WsClient c(d.port());
  open_session(c, "large");
  auto events = run_prompt(c, "large", "big 8000000", "p", std::chrono::seconds(60));
  EXPECT_EQ(final_text(events).size(), 8000000u);
}

namespace {
std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}
}  // namespace

TEST(AgentLifecycle, HundredSessionsLeaveNoZombieAndNoLeakedFd) {
  // 400 commands as fast as the client can send: above the default per-connection rate.
  Daemon d({.args = {"--rate-limit", "100000", "--rate-burst", "100000"}});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  // Warm up once so lazily opened descriptors (the demo listener, logs) are counted before.
  c.request({{"type", "create_session"}, {"id", "w"}, {"sessionId", "warm"}});
  c.request({{"type", "delete_session"}, {"id", "wd"}, {"sessionId", "warm"}});
  std::size_t fds_before = open_fds(d.pid());
  constexpr int kSessions = 100;
  std::vector<pid_t> pids;
  for (int i = 0; i < kSessions; ++i) {
    std::string id = "m" + std::to_string(i);
    auto r = c.request({{"type", "create_session"}, {"id", "c" + id}, {"sessionId", id}},
                       std::chrono::seconds(30));
    ASSERT_EQ(r["success"], true) << r.dump();
    pids.push_back(r["data"]["sessionInfo"]["pid"]);
  }
  EXPECT_GE(open_fds(d.pid()), fds_before + 4 * kSessions) << "each agent holds 4 fds";
  for (int i = 0; i < kSessions; ++i) {
    std::string id = "m" + std::to_string(i);
    run_prompt(c, id, "stream 5", "p" + id);
  }
  for (int i = 0; i < kSessions; ++i) {
    std::string id = "m" + std::to_string(i);
    EXPECT_EQ(c.request({{"type", "delete_session"}, {"id", "d" + id}, {"sessionId", id}})["success"], true);
  }
  for (pid_t pid : pids) EXPECT_FALSE(process_exists(pid)) << "agent " << pid << " left behind";
  EXPECT_EQ(open_fds(d.pid()), fds_before);
}

TEST(AgentLifecycle, FloodingAgentAgainstAStalledConsumerStaysBounded) {
  // 1 MiB high-water mark: a consumer that does not read loses events, never memory.
  Daemon d({.args = {"--outbound-high-water-bytes", "1048576"}});
  WsClient slow(d.port());
  open_session(slow, "flood");
  slow.send({{"type", "prompt"}, {"id", "f"}, {"sessionId", "flood"}, {"message", "flood 300000"}});
  // Meanwhile another client is served normally.
  WsClient other(d.port());
  ASSERT_TRUE(other.next());
  auto state = other.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "flood"}});
  EXPECT_EQ(state["success"], true);
  // Wait until the agent has finished writing, then let the slow consumer read.
  for (int i = 0; i < 200; ++i) {
    auto m = other.request({{"type", "get_metrics"}, {"id", "m" + std::to_string(i)}});
    if (m["data"]["eventsDropped"].get<std::uint64_t>() > 0 &&
        m["data"]["agentsRunning"] == 1 && m["data"]["eventsRelayed"].get<std::uint64_t>() >= 300000)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto dropped = slow.seen_or_wait(
      [](const json& j) { return j.value("type", "") == "events_dropped"; }, std::chrono::seconds(60));
  ASSERT_TRUE(dropped);
  EXPECT_EQ((*dropped)["data"]["sessionId"], "flood");
  EXPECT_LE((*dropped)["data"]["fromSeq"], (*dropped)["data"]["toSeq"]);
  // Everything delivered before the notice is contiguous; the notice names the gap.
  std::uint64_t last = 0;
  for (const auto& e : session_events(slow, "flood")) {
    if (e["seq"].get<std::uint64_t>() >= (*dropped)["data"]["fromSeq"].get<std::uint64_t>()) break;
    EXPECT_EQ(e["seq"].get<std::uint64_t>(), last + 1);
    last = e["seq"];
  }
  EXPECT_EQ(last + 1, (*dropped)["data"]["fromSeq"].get<std::uint64_t>());
  auto status = other.request({{"type", "get_metrics"}, {"id", "final"}});
  EXPECT_GT(status["data"]["eventsDropped"].get<std::uint64_t>(), 0u);
}
