// Persistence (DESIGN §9, §11): sessions and outcomes survive a restart, SIGKILL included.
// Every test runs the real daemon twice on one state dir, with the fake agent.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <mutex>
#include <thread>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Generous limits: the traffic test sends as fast as answers come.
const std::vector<std::string> kFastArgs = {"--rate-limit", "100000", "--rate-burst", "100000"};

// No warm pool: these tests look for a session's files in <state>/sessions/<id>/ (a session
// that took a pooled agent keeps the pool's folder name).
Daemon::Options on(const TempDir& state, std::vector<std::string> args = kFastArgs) {
  Daemon::Options o;
  o.state_dir = state.path();
  o.args = std::move(args);
  o.args.insert(o.args.end(), {"--warm-agents", "0"});
  return o;
}

// The same, with `work` as the workspace root (sessions' cwd and the files they name).
Daemon::Options on(const TempDir& state, const TempDir& work, std::vector<std::string> args = kFastArgs) {
  args.insert(args.end(), {"--workspace-root", work.path()});
  return on(state, std::move(args));
}

json ready_client(WsClient& c) {
  auto ready = c.next();
  EXPECT_TRUE(ready && (*ready)["type"] == "server_ready");
  return ready.value_or(json());
}

json stored_sessions(WsClient& c) {
  auto r = c.request({{"type", "list_stored_sessions"}, {"id", "stored-" + std::to_string(rand())}});
  EXPECT_EQ(r["success"], true) << r.dump();
  return r["data"]["sessions"];
}

json messages_of(WsClient& c, const std::string& session, const std::string& id) {
  auto r = c.request({{"type", "get_messages"}, {"id", id}, {"sessionId", session}});
  EXPECT_EQ(r["success"], true) << r.dump();
  return r["data"]["messages"];
}

// The command a traffic client sends as its n-th: mutating and read-only ones mixed.
json traffic_command(const std::string& session, int client, int n) {
  std::string id = "t" + std::to_string(client) + "-" + std::to_string(n);
  json c = {{"id", id}, {"sessionId", session}};
  switch (n % 4) {
    case 0: c["type"] = "set_session_name"; c["name"] = "name " + id; break;
    case 1: c["type"] = "get_state"; break;
    case 2: c["type"] = "set_auto_retry"; c["enabled"] = n % 8 == 2; break;
    default: c["type"] = "get_session_stats"; break;
  }
  return c;
}

}  // namespace

// The issue's "done when": SIGKILL while 20 clients send; after the restart every command that
// had a response is replayed identically, sessions are listed and loadable, conversations
// intact.
TEST(Persistence, SigkillDuringTrafficReplaysEveryAnsweredCommand) {
  constexpr int kClients = 20;
  constexpr int kSessions = 4;
  TempDir state;
  std::map<std::string, json> conversation;  // session -> get_messages before the kill
  std::mutex mu;
  std::map<std::string, json> sent;      // id -> command
  std::map<std::string, json> answered;  // id -> response
  {
    Daemon d(on(state));
    WsClient setup(d.port());
    ready_client(setup);
    for (int s = 0; s < kSessions; ++s) {
      std::string id = "kill-" + std::to_string(s);
      auto r = setup.request({{"type", "create_session"}, {"id", "create-" + id}, {"sessionId", id}},
                             std::chrono::seconds(30));
      ASSERT_EQ(r["success"], true) << r.dump();
      run_prompt(setup, id, "stream 3", "prompt-" + id);
      conversation[id] = messages_of(setup, id, "before-" + id);
      ASSERT_FALSE(conversation[id].empty());
    }
    std::atomic<bool> stop{false};
    std::atomic<int> responses{0};
    std::vector<std::thread> clients;
    for (int k = 0; k < kClients; ++k) {
      clients.emplace_back([&, k] {
        WsClient c(d.port());
        if (!c.next()) return;  // server_ready
        std::string session = "kill-" + std::to_string(k % kSessions);
        for (int n = 0; !stop; ++n) {
          json cmd = traffic_command(session, k, n);
          {
            std::lock_guard lock(mu);
            sent[cmd["id"]] = cmd;
          }
          c.send(cmd);
          auto r = c.wait_for([&](const json& j) { return is_response(j, cmd["id"]); },
                              std::chrono::seconds(5));
          if (!r) return;  // the daemon is gone
          std::lock_guard lock(mu);
          answered[cmd["id"]] = *r;
          ++responses;
        }
      });
    }
    // Let traffic flow, then kill the daemon in the middle of it.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (responses < 400 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(d.pid(), SIGKILL);
    d.wait_exit(std::chrono::seconds(10));
    stop = true;
    for (auto& t : clients) t.join();
  }
  ASSERT_GE(answered.size(), 100u);

  Daemon d(on(state));
  WsClient c(d.port());
  ready_client(c);
  auto recovery = c.request({{"type", "get_startup_recovery"}, {"id", "recovery"}});
  ASSERT_EQ(recovery["success"], true) << recovery.dump();
  std::set<std::string> lost;
  for (const auto& item : recovery["data"]["inFlightAtCrash"]) lost.insert(item.value("commandId", ""));

  // Every answered command: the identical response, marked replayed, nothing run again.
  for (const auto& [id, original] : answered) {
    auto again = c.request(sent[id]);
    ASSERT_EQ(again.value("replayed", false), true) << id << ": " << again.dump();
    again.erase("replayed");
    EXPECT_EQ(again, original) << id;
    EXPECT_EQ(lost.count(id), 0u) << id << " was answered, not lost";
  }
  // Commands sent but not answered: either never admitted (run now, fresh) or reported
  // lost and answered outcome_unknown, never silently run again.
  for (const auto& [id, cmd] : sent) {
    if (answered.count(id)) continue;
    auto r = c.request(cmd);
    if (lost.count(id)) {
      EXPECT_EQ(r.value("code", ""), "outcome_unknown") << r.dump();
      EXPECT_EQ(r.value("replayed", false), true);
    } else {
      EXPECT_NE(r.value("code", ""), "outcome_unknown") << r.dump();
    }
  }

  // Sessions: listed, loadable, conversation intact.
  auto stored = stored_sessions(c);
  EXPECT_EQ(stored.size(), static_cast<std::size_t>(kSessions)) << stored.dump();
  for (const auto& [id, before] : conversation) {
    auto loaded = c.request({{"type", "load_session"}, {"id", "load-" + id}, {"sessionId", id}},
                            std::chrono::seconds(30));
    ASSERT_EQ(loaded["success"], true) << loaded.dump();
    EXPECT_EQ(loaded["data"]["sessionId"], id);
    EXPECT_EQ(messages_of(c, id, "after-" + id), before) << id;
  }
  EXPECT_TRUE(stored_sessions(c).empty()) << "running sessions are not listed as stored";
  auto metrics = c.request({{"type", "get_metrics"}, {"id", "metrics-after"}});
  EXPECT_GT(metrics["data"]["store"]["commits"].get<double>(), 0) << metrics["data"].dump();
  EXPECT_EQ(metrics["data"]["store"]["errors"], 0);
}

// A command admitted but unanswered at the kill is reported, and a retry is told its outcome
// is unknown instead of running it again.
TEST(Persistence, CommandInFlightAtCrashIsReportedAndNotRunAgain) {
  TempDir state;
  json lost_cmd = {{"type", "set_session_name"}, {"id", "lost-1"}, {"sessionId", "inflight"},
                   {"name", "never answered"}};
  {
    Daemon d(on(state));
    WsClient c(d.port());
    open_session(c, "inflight");
    auto st = c.request({{"type", "get_state"}, {"id", "pid"}, {"sessionId", "inflight"}});
    pid_t agent = st["data"]["pid"].get<pid_t>();
    ::kill(agent, SIGSTOP);  // the agent will not answer
    c.send(lost_cmd);
    // Started means admitted, journaled and sent to the (stopped) agent.
    ASSERT_TRUE(c.wait_for([](const json& j) {
      return j.value("type", "") == "command_started" && j["data"].value("commandId", "") == "lost-1";
    }, std::chrono::seconds(5)));
    ::kill(d.pid(), SIGKILL);
    d.wait_exit(std::chrono::seconds(10));
    ::kill(agent, SIGKILL);
    ::kill(agent, SIGCONT);
  }
  Daemon d(on(state));
  WsClient c(d.port());
  ready_client(c);
  auto recovery = c.request({{"type", "get_startup_recovery"}, {"id", "recovery"}});
  ASSERT_EQ(recovery["data"]["inFlightAtCrash"].size(), 1u) << recovery.dump();
  EXPECT_EQ(recovery["data"]["inFlightAtCrash"][0]["commandId"], "lost-1");
  EXPECT_EQ(recovery["data"]["inFlightAtCrash"][0]["command"], "set_session_name");
  auto retry = c.request(lost_cmd);
  EXPECT_EQ(retry["success"], false);
  EXPECT_EQ(retry["code"], "outcome_unknown") << retry.dump();
  EXPECT_EQ(retry["replayed"], true);
  // A new id is a new command: it runs.
  auto load = c.request({{"type", "load_session"}, {"id", "load"}, {"sessionId", "inflight"}},
                        std::chrono::seconds(30));
  ASSERT_EQ(load["success"], true) << load.dump();
  json fresh = lost_cmd;
  fresh["id"] = "lost-1-again";
  EXPECT_EQ(c.request(fresh)["success"], true);
}

// --resume-sessions: the sessions running at the stop come back by themselves, with their
// version, name, model, cwd and conversation; a client resumes where it was.
TEST(Persistence, ResumeSessionsBringsRunningSessionsBackAsTheyWere) {
  TempDir state;
  TempDir work;
  json before_summary, before_messages;
  std::uint64_t version = 0;
  {
    Daemon d(on(state, work));
    WsClient c(d.port());
    open_session(c, "resumed", {{"cwd", work.path()}, {"name", "first name"}});
    run_prompt(c, "resumed", "stream 2", "p1");
    EXPECT_EQ(c.request({{"type", "set_session_name"}, {"id", "n"}, {"sessionId", "resumed"},
                         {"name", "second name"}})["success"], true);
    EXPECT_EQ(c.request({{"type", "set_model"}, {"id", "m"}, {"sessionId", "resumed"},
                         {"provider", "fake"}, {"modelId", "other-model"}})["success"], true);
    // The name and model are stored once the daemon has asked the agent (one round trip).
    auto st = c.request({{"type", "get_state"}, {"id", "st"}, {"sessionId", "resumed"}});
    version = st["sessionVersion"].get<std::uint64_t>();
    before_messages = messages_of(c, "resumed", "msgs");
    auto list = c.request({{"type", "list_sessions"}, {"id", "list"}});
    before_summary = list["data"]["sessions"][0];
    EXPECT_EQ(before_summary["name"], "second name") << before_summary.dump();
    EXPECT_EQ(before_summary["model"], "fake/other-model") << before_summary.dump();
    EXPECT_EQ(d.signal_and_wait(SIGTERM, std::chrono::seconds(20)), 0);
  }
  auto args = kFastArgs;
  args.push_back("--resume-sessions");
  Daemon d(on(state, work, args));
  ASSERT_TRUE(d.wait_log("session_resumed", std::chrono::seconds(20)));
  WsClient c(d.port());
  ready_client(c);
  auto list = c.request({{"type", "list_sessions"}, {"id", "list"}});
  ASSERT_EQ(list["data"]["sessions"].size(), 1u) << list.dump();
  auto after = list["data"]["sessions"][0];
  for (const char* key : {"sessionId", "name", "model", "cwd", "createdAt"})
    EXPECT_EQ(after[key], before_summary[key]) << key;
  // The client resumes: subscribes, sees the same conversation and version.
  auto sw = c.request({{"type", "switch_session"}, {"id", "sw"}, {"sessionId", "resumed"}});
  EXPECT_EQ(sw["success"], true) << sw.dump();
  auto st = c.request({{"type", "get_state"}, {"id", "st2"}, {"sessionId", "resumed"}});
  EXPECT_EQ(st["sessionVersion"], version);
  EXPECT_EQ(messages_of(c, "resumed", "msgs2"), before_messages);
  auto recovery = c.request({{"type", "get_startup_recovery"}, {"id", "recovery"}});
  ASSERT_EQ(recovery["data"]["recoveredSessions"].size(), 1u) << recovery.dump();
  EXPECT_EQ(recovery["data"]["recoveredSessions"][0]["sessionId"], "resumed");
  // And it goes on from there.
  run_prompt(c, "resumed", "stream 1", "p2");
  auto st3 = c.request({{"type", "get_state"}, {"id", "st3"}, {"sessionId", "resumed"}});
  EXPECT_EQ(st3["sessionVersion"], version + 1);
}

// switch_session_file to another file survives a kill: the session comes back on that file,
// not on whatever is newest in its dir.
TEST(Persistence, SwitchedSessionFileSurvivesRestart) {
  TempDir state;
  TempDir work;
  std::string other = work.path() + "/elsewhere.jsonl";
  json before;
  {
    Daemon d(on(state, work));
    WsClient c(d.port());
    open_session(c, "switcher");
    run_prompt(c, "switcher", "stream 2", "p1");
    {
      std::ofstream f(other);
      f << R"({"role":"user","content":[{"type":"text","text":"from the other file"}],"timestamp":1})" << "\n";
    }
    auto sw = c.request({{"type", "switch_session_file"}, {"id", "sw"}, {"sessionId", "switcher"},
                         {"sessionPath", other}});
    ASSERT_EQ(sw["success"], true) << sw.dump();
    // The daemon asks the agent for its file right after; wait for the stored row.
    for (int i = 0; i < 100; ++i) {
      before = messages_of(c, "switcher", "m" + std::to_string(i));
      if (before.size() == 1) break;
    }
    ASSERT_EQ(before.size(), 1u) << before.dump();
    // The newest file in the session's dir is now the first one: touch it.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    run_prompt(c, "switcher", "stream 1", "p2");  // writes to the other file
    before = messages_of(c, "switcher", "final");
    ::kill(d.pid(), SIGKILL);
    d.wait_exit(std::chrono::seconds(10));
  }
  Daemon d(on(state, work));
  WsClient c(d.port());
  ready_client(c);
  auto stored = stored_sessions(c);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0]["sessionFile"], other) << stored.dump();
  auto load = c.request({{"type", "load_session"}, {"id", "load"}, {"sessionId", "switcher"}},
                        std::chrono::seconds(30));
  ASSERT_EQ(load["success"], true) << load.dump();
  EXPECT_EQ(load["data"]["sessionInfo"]["sessionFile"], other);
  EXPECT_EQ(messages_of(c, "switcher", "after"), before);
}

// delete keeps the record loadable; purge removes it and the private agent dir; a session
// that never wrote a file leaves no directory behind.
TEST(Persistence, DeleteKeepsTheRecordPurgeRemovesIt) {
  TempDir state;
  Daemon d(on(state));
  WsClient c(d.port());
  open_session(c, "kept");
  run_prompt(c, "kept", "stream 2", "p1");
  auto messages = messages_of(c, "kept", "m1");
  fs::path dir = fs::path(state.path()) / "sessions" / "kept";
  ASSERT_TRUE(fs::exists(dir / "agent"));
  auto del = c.request({{"type", "delete_session"}, {"id", "del"}, {"sessionId", "kept"}},
                       std::chrono::seconds(20));
  ASSERT_EQ(del["success"], true) << del.dump();
  EXPECT_FALSE(fs::exists(dir / "agent")) << "the private agent dir is rebuilt at load";
  auto stored = stored_sessions(c);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0]["state"], "stopped");
  auto load = c.request({{"type", "load_session"}, {"id", "load"}, {"sessionId", "kept"}},
                        std::chrono::seconds(30));
  ASSERT_EQ(load["success"], true) << load.dump();
  EXPECT_EQ(messages_of(c, "kept", "m2"), messages);

  auto purge = c.request({{"type", "delete_session"}, {"id", "purge"}, {"sessionId", "kept"},
                          {"purge", true}}, std::chrono::seconds(20));
  ASSERT_EQ(purge["success"], true) << purge.dump();
  EXPECT_EQ(purge["data"]["purged"], true);
  EXPECT_TRUE(stored_sessions(c).empty());
  EXPECT_FALSE(fs::exists(dir / "agent"));
  EXPECT_TRUE(fs::exists(dir / "fake-session.jsonl")) << "pi's session file stays by default";
  auto gone = c.request({{"type", "load_session"}, {"id", "load2"}, {"sessionId", "kept"}});
  EXPECT_EQ(gone["code"], "session_not_found");

  // 20 create/delete cycles of sessions that never wrote a file: no directory is left.
  for (int i = 0; i < 20; ++i) {
    std::string id = "cycle-" + std::to_string(i);
    ASSERT_EQ(c.request({{"type", "create_session"}, {"id", "c" + id}, {"sessionId", id}},
                        std::chrono::seconds(30))["success"], true);
    ASSERT_EQ(c.request({{"type", "delete_session"}, {"id", "d" + id}, {"sessionId", id},
                         {"purge", i % 2 == 0}}, std::chrono::seconds(20))["success"], true);
    EXPECT_FALSE(fs::exists(fs::path(state.path()) / "sessions" / id)) << id;
  }
}

TEST(Persistence, PurgeWithPurgeSessionFilesRemovesTheWholeDir) {
  TempDir state;
  auto args = kFastArgs;
  args.push_back("--purge-session-files");
  Daemon d(on(state, args));
  WsClient c(d.port());
  open_session(c, "gone");
  run_prompt(c, "gone", "stream 2", "p1");
  fs::path dir = fs::path(state.path()) / "sessions" / "gone";
  ASSERT_TRUE(fs::exists(dir / "fake-session.jsonl"));
  auto purge = c.request({{"type", "delete_session"}, {"id", "purge"}, {"sessionId", "gone"},
                          {"purge", true}}, std::chrono::seconds(20));
  ASSERT_EQ(purge["success"], true) << purge.dump();
  EXPECT_FALSE(fs::exists(dir));
}

// A database that cannot be read: one line on stderr, exit 2, the file untouched; with
// --reset-corrupt-db it is moved aside and the daemon starts.
TEST(Persistence, CorruptDatabaseRefusesToStartUnlessReset) {
  TempDir state;
  fs::path db = fs::path(state.path()) / "pi-server.db";
  std::string garbage(8192, 'x');
  {
    std::ofstream f(db, std::ios::binary);
    f << garbage;
  }
  std::string cmd = daemon_binary() + " --state-dir " + state.path() +
                    " --listen 127.0.0.1:0 --agent-command " + fake_agent_binary() + " 2>&1";
  auto [exit_code, out] = run_command(cmd);
  EXPECT_EQ(exit_code, 2) << out;
  EXPECT_NE(out.find("pi-server: cannot use the state database"), std::string::npos) << out;
  EXPECT_NE(out.find("--reset-corrupt-db"), std::string::npos) << out;
  {
    std::ifstream f(db, std::ios::binary);
    std::string kept((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(kept, garbage) << "the bad file is left as it was";
  }
  auto args = kFastArgs;
  args.push_back("--reset-corrupt-db");
  Daemon d(on(state, args));
  ASSERT_TRUE(d.wait_log("db_moved_aside", std::chrono::seconds(5)));
  int aside = 0;
  for (const auto& entry : fs::directory_iterator(state.path()))
    if (entry.path().filename().string().starts_with("pi-server.db.corrupt-")) ++aside;
  EXPECT_EQ(aside, 1);
  WsClient c(d.port());
  open_session(c, "fresh");
}
