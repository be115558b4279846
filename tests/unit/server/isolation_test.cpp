// Isolation between principals, through the real pipeline, executor, registry, admission,
// responder and metrics with fake agents and fake connections (docs/security.md): another
// principal's session does not exist for you; an admin sees all.
#include <gtest/gtest.h>

#include <filesystem>

#include "fakes.hpp"
#include "manual_clock.hpp"
#include "reliability/command_pipeline.hpp"
#include "security/path_confinement.hpp"
#include "server/admission_policy.hpp"
#include "server/metrics_report.hpp"
#include "server/responder.hpp"
#include "server/server_commands.hpp"
#include "session/session_registry.hpp"

using namespace pi_server;
using namespace std::chrono_literals;
using nlohmann::json;
using pi_server::testing::FakeAgentChannel;
using pi_server::testing::FakeConnection;
using pi_server::testing::FakeLauncher;
using pi_server::testing::ManualClock;
namespace fs = std::filesystem;

namespace {

const Principal kAlice{"alice", false};
const Principal kBob{"bob", false};
const Principal kRoot{"root", true};

ServerOptions make_options() {
  ServerOptions o;
  static int counter = 0;
  o.state_dir = fs::temp_directory_path() /
                ("isolation-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
  fs::create_directories(o.state_dir);
  o.state_dir = fs::canonical(o.state_dir);
  o.agent.default_model = "acme/m1";
  return o;
}

// The daemon's core as Server wires it, minus sockets and processes.
struct World {
  World() {
    sessions.set_provider_feedback(&admission);
    for (const auto& c : {alice, alice2, bob, root}) connections.add(c);
  }
  ~World() {
    fs::remove_all(options.state_dir);
    fs::remove_all(workspace);
  }

  // Submits one command as `from` and runs what falls due. Returns its response.
  json send(const std::shared_ptr<FakeConnection>& from, json command) {
    std::size_t before = from->controls.size();
    auto parsed = protocol::parse_envelope(command.dump());
    EXPECT_TRUE(parsed) << command.dump();
    if (!parsed) return {};
    reliability::Submission sub;
    sub.envelope = std::move(parsed.value());
    sub.principal = from->principal();
    sub.connection_id = from->id();
    pipeline.submit(std::move(sub));
    clock.run_due();
    for (std::size_t i = before; i < from->controls.size(); ++i)
      if (from->controls[i].value("type", "") == "response") return from->controls[i];
    return {};
  }
  // Frames `c` got from index `from` on, as "type" or "type:command".
  static std::vector<std::string> shapes(const FakeConnection& c, std::size_t from) {
    std::vector<std::string> out;
    for (std::size_t i = from; i < c.controls.size(); ++i) {
      const auto& f = c.controls[i];
      std::string s = f.value("type", "");
      if (s == "response") s += ":" + f.value("code", "ok") + ":" + f.value("error", "");
      out.push_back(s);
    }
    return out;
  }
  // alice creates `id` (its agent answers the start-up get_state).
  void create_as(const std::shared_ptr<FakeConnection>& who, const std::string& id) {
    std::size_t agents = launcher.agents.size();
    reliability::Submission sub;
    sub.envelope = protocol::parse_envelope(
                       json{{"type", "create_session"}, {"id", "create-" + id}, {"sessionId", id}}.dump())
                       .value();
    sub.principal = who->principal();
    sub.connection_id = who->id();
    pipeline.submit(std::move(sub));
    clock.run_due();
    ASSERT_EQ(launcher.agents.size(), agents + 1);
    auto agent = launcher.agents.back();
    auto probe = agent->written_json(agent->written.size() - 1);
    agent->say(json{{"type", "response"}, {"id", probe["id"]}, {"command", "get_state"}, {"success", true},
                    {"data", {{"sessionFile", "/tmp/x.jsonl"}, {"model", {{"provider", "acme"}, {"id", "m1"}}}}}});
    clock.run_due();
  }
  std::size_t count(const FakeConnection& c, const std::string& type) const {
    std::size_t n = 0;
    for (const auto& f : c.controls) n += f.value("type", "") == type;
    return n;
  }

  ManualClock clock;
  FakeLauncher launcher;
  ServerOptions options = make_options();
  fs::path workspace = [this] {
    fs::path w = options.state_dir.string() + "-work";
    fs::create_directories(w);
    return w;
  }();
  ConnectionRegistry connections;
  server::Responder responder{connections};
  session::RelayStats stats;
  session::SessionRegistry sessions{clock, clock, launcher, options, connections, stats};
  server::AdmissionPolicy admission{clock, clock, server::RateLimit{1000, 1000}, options.breakers, sessions};
  reliability::OutcomeStore outcomes{clock, 1000, 3600s, 1u << 24};
  server::FrontDoorStats front;
  auth::AuthStats auth;
  server::MetricsReport metrics{front, responder, sessions, connections, pipeline, outcomes, admission, auth};
  security::PathConfinement paths{{workspace, options.state_dir}, options.state_dir};
  server::ServerCommands commands{sessions, connections, responder, outcomes, metrics, paths,
                                  workspace};
  reliability::CommandPipeline pipeline{
      clock, clock, reliability::PipelineCollaborators{outcomes, admission, sessions, commands, responder},
      options.pipeline};
  std::shared_ptr<FakeConnection> alice = std::make_shared<FakeConnection>(1, kAlice);
  std::shared_ptr<FakeConnection> alice2 = std::make_shared<FakeConnection>(2, kAlice);
  std::shared_ptr<FakeConnection> bob = std::make_shared<FakeConnection>(3, kBob);
  std::shared_ptr<FakeConnection> root = std::make_shared<FakeConnection>(4, kRoot);
};

// A value of the field's type, for filling required fields.
json sample(protocol::FieldType type) {
  switch (type) {
    case protocol::FieldType::string: return "x";
    case protocol::FieldType::path:
    case protocol::FieldType::session_file: return "x.jsonl";
    case protocol::FieldType::boolean: return true;
    case protocol::FieldType::integer:
    case protocol::FieldType::unsigned_integer: return 1;
    case protocol::FieldType::array: return json::array();
    case protocol::FieldType::object: return json::object();
  }
  return nullptr;
}

// Every command of the table that names an existing session, plus one the table does not know
// (relayed as is), each with its required fields and optional path fields filled in.
std::vector<json> commands_naming(const std::string& session_id) {
  std::vector<json> out;
  for (const auto& spec : protocol::all_commands()) {
    if (!spec.needs_session) continue;
    json cmd = {{"type", std::string(spec.name)}, {"sessionId", session_id}};
    for (const auto& f : spec.fields)
      if (f.required || protocol::is_path(f.type)) cmd[std::string(f.name)] = sample(f.type);
    out.push_back(cmd);
  }
  out.push_back({{"type", "frobnicate"}, {"sessionId", session_id}});
  // Resume, and the preconditions.
  out.push_back({{"type", "switch_session"}, {"sessionId", session_id}, {"afterSeq", 0}});
  out.push_back({{"type", "get_state"}, {"sessionId", session_id}, {"ifSessionVersion", 7}});
  return out;
}

}  // namespace

TEST(Isolation, EverySessionCommandForAnotherPrincipalsSessionIsSessionNotFoundAndChangesNothing) {
  World w;
  w.create_as(w.alice, "a1");
  auto agent = w.launcher.agents.back();
  std::size_t written = agent->written.size();
  auto version = w.sessions.find("a1")->version();
  int n = 0;
  for (json cmd : commands_naming("a1")) {
    const std::string label = cmd.dump();
    // The same command for an id that does not exist: the answer to compare with.
    json unknown = cmd;
    unknown["sessionId"] = "zz";
    unknown["id"] = "u" + std::to_string(n);
    cmd["id"] = "f" + std::to_string(n++);
    std::size_t mark = w.bob->controls.size();
    auto r = w.send(w.bob, cmd);
    auto foreign_frames = World::shapes(*w.bob, mark);
    EXPECT_EQ(r.value("code", ""), "session_not_found") << label << " -> " << r.dump();
    EXPECT_EQ(r.value("error", ""), "Session not found: a1") << label;
    mark = w.bob->controls.size();
    w.send(w.bob, unknown);
    auto unknown_frames = World::shapes(*w.bob, mark);
    for (auto& f : unknown_frames)
      if (auto at = f.find("zz"); at != std::string::npos) f.replace(at, 2, "a1");
    EXPECT_EQ(foreign_frames, unknown_frames) << label << ": a foreign id must look like an unknown one";
    // A replay of it is a replay, as for an unknown id.
    auto again = w.send(w.bob, cmd);
    if (cmd["type"] != "extension_ui_response") {
      EXPECT_EQ(again.value("replayed", false), true) << label;
    }
  }
  EXPECT_EQ(agent->written.size(), written) << "nothing reached alice's agent";
  ASSERT_TRUE(w.sessions.find("a1"));
  EXPECT_EQ(w.sessions.find("a1")->version(), version);
  EXPECT_FALSE(w.sessions.find("a1")->is_subscribed(w.bob->id()));
  EXPECT_EQ(w.sessions.find("a1")->owner(), "alice");
  EXPECT_GT(n, 40) << "the whole table was covered";
}

TEST(Isolation, TheOwnerAndAnAdminMayActOnTheSession) {
  World w;
  w.create_as(w.alice, "a1");
  auto agent = w.launcher.agents.back();
  w.send(w.root, {{"type", "get_state"}, {"id", "g"}, {"sessionId", "a1"}});
  EXPECT_EQ(json::parse(agent->written.back())["type"], "get_state") << "the admin's command was relayed";
  auto sub = w.send(w.root, {{"type", "switch_session"}, {"id", "s"}, {"sessionId", "a1"}});
  EXPECT_EQ(sub["success"], true);
  EXPECT_TRUE(w.sessions.find("a1")->is_subscribed(w.root->id()));
  auto sub2 = w.send(w.alice2, {{"type", "switch_session"}, {"id", "s"}, {"sessionId", "a1"}});
  EXPECT_EQ(sub2["success"], true) << "another connection of the owner";
}

TEST(Isolation, ListSessionsShowsOnlyTheCallersAndAllToAnAdmin) {
  World w;
  w.create_as(w.alice, "a1");
  w.create_as(w.bob, "b1");
  auto ids = [&](const std::shared_ptr<FakeConnection>& c) {
    std::vector<std::string> out;
    json r = w.send(c, json{{"type", "list_sessions"}});
    for (const auto& s : r["data"]["sessions"]) out.push_back(s["sessionId"]);
    return out;
  };
  EXPECT_EQ(ids(w.alice), std::vector<std::string>{"a1"});
  EXPECT_EQ(ids(w.bob), std::vector<std::string>{"b1"});
  EXPECT_EQ(ids(w.root), (std::vector<std::string>{"a1", "b1"}));
}

TEST(Isolation, SessionCreatedAndDeletedReachOnlyTheOwnerAndAdmins) {
  World w;
  w.create_as(w.alice, "a1");
  EXPECT_EQ(w.count(*w.alice, "session_created"), 1u);
  EXPECT_EQ(w.count(*w.alice2, "session_created"), 1u);
  EXPECT_EQ(w.count(*w.root, "session_created"), 1u);
  EXPECT_EQ(w.count(*w.bob, "session_created"), 0u);
  // An admin deletes it: the owner hears of it, bob does not.
  w.send(w.root, {{"type", "delete_session"}, {"id", "d"}, {"sessionId", "a1"}});
  w.launcher.agents.back()->exit_with({0, std::nullopt});
  w.clock.advance(1s);
  EXPECT_EQ(w.count(*w.alice2, "session_deleted"), 1u);
  EXPECT_EQ(w.count(*w.root, "session_deleted"), 1u);
  EXPECT_EQ(w.count(*w.bob, "session_deleted"), 0u);
}

TEST(Isolation, TheSameCommandIdFromTwoPrincipalsIsNotAReplay) {
  World w;
  w.create_as(w.alice, "a1");
  auto a = w.send(w.alice, {{"type", "list_sessions"}, {"id", "same"}});
  auto b = w.send(w.bob, {{"type", "list_sessions"}, {"id", "same"}, {"idempotencyKey", "k"}});
  EXPECT_EQ(b.value("replayed", false), false);
  EXPECT_EQ(b["success"], true) << "not a conflict either: " << b.dump();
  EXPECT_TRUE(b["data"]["sessions"].empty()) << "bob's own answer, not alice's stored one";
  // dependsOn names the caller's own ids only.
  auto dep = w.send(w.bob, {{"type", "list_sessions"}, {"id", "d"}, {"dependsOn", {"create-a1"}}});
  EXPECT_EQ(dep["code"], "dependency_failed") << dep.dump();
  // And the history is each principal's own.
  auto history = w.send(w.bob, {{"type", "get_command_history"}, {"id", "h"}});
  ASSERT_TRUE(history["data"]["commands"].is_array()) << history.dump();
  EXPECT_FALSE(history["data"]["commands"].empty());
  for (const auto& e : history["data"]["commands"]) EXPECT_NE(e.value("commandId", ""), "create-a1");
}

TEST(Isolation, MetricsDetailAndHealthIssuesNameOnlyVisibleSessions) {
  World w;
  w.create_as(w.alice, "a1");
  // A command the agent has not answered holds a1's lane: it shows in laneDepths.
  w.send(w.alice, {{"type", "get_state"}, {"id", "pending"}, {"sessionId", "a1"}});
  auto agent_lanes = [&](const Principal& p) { return w.metrics.to_json(&p)["laneDepths"]; };
  EXPECT_TRUE(agent_lanes(kAlice).contains("session:a1")) << agent_lanes(kAlice).dump();
  EXPECT_TRUE(agent_lanes(kRoot).contains("session:a1"));
  EXPECT_FALSE(agent_lanes(kBob).contains("session:a1")) << agent_lanes(kBob).dump();
  EXPECT_TRUE(w.metrics.to_json()["laneDepths"].contains("session:a1")) << "the operator's view";
  w.launcher.agents.back()->exit_with({1, std::nullopt});  // a1 now has no running agent
  auto issues = [&](const Principal& p) { return w.metrics.health(&p)["issues"].dump(); };
  EXPECT_EQ(issues(kBob).find("a1"), std::string::npos) << issues(kBob);
  EXPECT_NE(issues(kAlice).find("a1"), std::string::npos) << issues(kAlice);
  EXPECT_NE(issues(kRoot).find("a1"), std::string::npos);
  EXPECT_EQ(w.metrics.health(&kBob)["agentsDown"], 1) << "counts are the daemon's";
  auto queues = w.metrics.to_json(&kBob)["outboundQueues"];
  EXPECT_TRUE(queues.contains("c3"));
  EXPECT_FALSE(queues.contains("c1")) << queues.dump();
  EXPECT_TRUE(w.metrics.to_json(&kRoot)["outboundQueues"].contains("c1"));
}

TEST(Isolation, SessionFoldersOfOtherPrincipalsAreForbiddenPaths) {
  World w;
  w.create_as(w.alice, "a1");
  w.create_as(w.bob, "b1");
  auto folder = w.options.state_dir / "sessions" / "a1";
  auto r = w.send(w.bob, {{"type", "switch_session_file"}, {"id", "x"}, {"sessionId", "b1"},
                          {"sessionPath", (folder / "s.jsonl").string()}});
  EXPECT_EQ(r["code"], "forbidden") << r.dump();
  auto own = w.send(w.alice, {{"type", "switch_session_file"}, {"id", "x"}, {"sessionId", "a1"},
                              {"sessionPath", (folder / "s.jsonl").string()}});
  auto line = json::parse(w.launcher.agents[0]->written.back());
  EXPECT_EQ(line["type"], "switch_session");
  EXPECT_EQ(line["sessionPath"], (folder / "s.jsonl").string());
}
