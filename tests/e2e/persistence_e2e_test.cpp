// Persistence with the real pinned pi (DESIGN §11): a conversation survives a kill -9 of the
// daemon, and --resume-sessions brings a session back on the file it was on, even when a
// newer file sits in its directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

Daemon::Options real_pi_on(const TempDir& state, std::vector<std::string> args = {}) {
  Daemon::Options o;
  o.use_fake_agent = false;
  o.state_dir = state.path();
  o.args = std::move(args);
  return o;
}

json request_ok(WsClient& c, json cmd) {
  auto r = c.request(std::move(cmd), std::chrono::seconds(60));
  EXPECT_EQ(r["success"], true) << r.dump();
  return r;
}

}  // namespace

TEST(RealPiPersistence, ConversationNameAndVersionSurviveKill9) {
  ASSERT_EQ(::access(PI_SERVER_DEFAULT_AGENT, X_OK), 0) << "run scripts/setup";
  TempDir state;
  json messages;
  json state_before;
  {
    Daemon d(real_pi_on(state));
    WsClient c(d.port());
    open_session(c, "kept");
    run_prompt(c, "kept", "stream 5", "p1", std::chrono::seconds(60));
    request_ok(c, {{"type", "set_session_name"}, {"id", "n"}, {"sessionId", "kept"}, {"name", "my talk"}});
    messages = request_ok(c, {{"type", "get_messages"}, {"id", "m"}, {"sessionId", "kept"}})["data"]["messages"];
    int users = 0, assistants = 0;
    for (const auto& m : messages) {
      users += m["role"] == "user";
      assistants += m["role"] == "assistant";
    }
    ASSERT_EQ(users, 1);
    ASSERT_EQ(assistants, 1);
    state_before = request_ok(c, {{"type", "get_state"}, {"id", "s"}, {"sessionId", "kept"}});
    ::kill(d.pid(), SIGKILL);
    d.wait_exit(std::chrono::seconds(10));
  }
  Daemon d(real_pi_on(state));
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  auto stored = request_ok(c, {{"type", "list_stored_sessions"}, {"id", "ls"}})["data"]["sessions"];
  ASSERT_EQ(stored.size(), 1u) << stored.dump();
  EXPECT_EQ(stored[0]["name"], "my talk");
  request_ok(c, {{"type", "load_session"}, {"id", "load"}, {"sessionId", "kept"}});
  auto after = request_ok(c, {{"type", "get_messages"}, {"id", "m2"}, {"sessionId", "kept"}});
  EXPECT_EQ(after["data"]["messages"], messages);
  auto st = request_ok(c, {{"type", "get_state"}, {"id", "s2"}, {"sessionId", "kept"}});
  EXPECT_EQ(st["sessionVersion"], state_before["sessionVersion"]);
  EXPECT_EQ(st["data"]["sessionFile"], state_before["data"]["sessionFile"]);
  EXPECT_EQ(st["data"]["sessionName"], "my talk");
  // Replays of the first run's commands still answer from the journal.
  auto replay = c.request({{"type", "get_state"}, {"id", "s"}, {"sessionId", "kept"}});
  EXPECT_EQ(replay["replayed"], true);
  replay.erase("replayed");
  EXPECT_EQ(replay, state_before);
}

TEST(RealPiPersistence, ResumeSessionsComesBackOnTheSwitchedFile) {
  ASSERT_EQ(::access(PI_SERVER_DEFAULT_AGENT, X_OK), 0) << "run scripts/setup";
  TempDir state;
  json first_messages;
  std::string first_file;
  {
    Daemon d(real_pi_on(state));
    WsClient c(d.port());
    open_session(c, "sw");
    run_prompt(c, "sw", "stream 3", "p1", std::chrono::seconds(60));
    first_file = request_ok(c, {{"type", "get_state"}, {"id", "s1"}, {"sessionId", "sw"}})["data"]["sessionFile"];
    first_messages = request_ok(c, {{"type", "get_messages"}, {"id", "m1"}, {"sessionId", "sw"}})["data"]["messages"];
    // A second file, newer than the first, then back to the first.
    request_ok(c, {{"type", "new_session"}, {"id", "new"}, {"sessionId", "sw"}});
    run_prompt(c, "sw", "stream 2", "p2", std::chrono::seconds(60));
    request_ok(c, {{"type", "switch_session_file"}, {"id", "back"}, {"sessionId", "sw"},
                   {"sessionPath", first_file}});
    auto st = request_ok(c, {{"type", "get_state"}, {"id", "s2"}, {"sessionId", "sw"}});
    ASSERT_EQ(st["data"]["sessionFile"], first_file);
    EXPECT_EQ(d.signal_and_wait(SIGTERM, std::chrono::seconds(20)), 0);
  }
  Daemon d(real_pi_on(state, {"--resume-sessions"}));
  ASSERT_TRUE(d.wait_log("session_resumed", std::chrono::seconds(30)));
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  request_ok(c, {{"type", "switch_session"}, {"id", "sub"}, {"sessionId", "sw"}});
  auto st = request_ok(c, {{"type", "get_state"}, {"id", "s3"}, {"sessionId", "sw"}});
  EXPECT_EQ(st["data"]["sessionFile"], first_file) << "not the newest file in the dir";
  auto messages = request_ok(c, {{"type", "get_messages"}, {"id", "m3"}, {"sessionId", "sw"}});
  EXPECT_EQ(messages["data"]["messages"], first_messages);
  // The client goes on where it was.
  auto events = run_prompt(c, "sw", "stream 2", "p3", std::chrono::seconds(60));
  EXPECT_FALSE(events.empty());
}
