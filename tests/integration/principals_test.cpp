// Isolation between principals through the real daemon, with token authentication
// (--auth-tokens, DESIGN §9): alice and bob are ordinary principals, root is an admin
// (docs/security.md, "Isolation between principals").
#include <gtest/gtest.h>

#include <fstream>

#include "daemon.hpp"
#include "protocol/commands.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

class Principals : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(tokens_.path() + "/tokens") << "# test principals\n"
                                                 "alice-token alice\n"
                                                 "bob-token bob\n"
                                                 "root-token root admin\n";
    Daemon::Options o;
    o.args = {"--auth-tokens", tokens_.path() + "/tokens"};
    daemon_ = std::make_unique<Daemon>(o);
  }
  std::unique_ptr<WsClient> connect(const std::string& token) {
    auto c = std::make_unique<WsClient>(daemon_->port(), ClientOptions{.bearer_token = token});
    auto ready = c->next();
    EXPECT_TRUE(ready && (*ready)["type"] == "server_ready");
    return c;
  }
  static json create(WsClient& c, const std::string& id) {
    auto r = c.request({{"type", "create_session"}, {"id", "create-" + id}, {"sessionId", id}},
                       std::chrono::seconds(30));
    EXPECT_EQ(r["success"], true) << r.dump();
    return r;
  }
  static std::vector<std::string> listed(WsClient& c, const std::string& id) {
    json r = c.request({{"type", "list_sessions"}, {"id", id}});
    std::vector<std::string> out;
    for (const auto& s : r["data"]["sessions"]) out.push_back(s["sessionId"]);
    return out;
  }
  static std::size_t count(const WsClient& c, const std::string& type) {
    std::size_t n = 0;
    for (const auto& j : c.history()) n += j.value("type", "") == type;
    return n;
  }

  TempDir tokens_;
  std::unique_ptr<Daemon> daemon_;
};

// A value of the field's type, for filling required fields.
json sample(pi_server::protocol::FieldType type) {
  using pi_server::protocol::FieldType;
  switch (type) {
    case FieldType::string: return "x";
    case FieldType::path:
    case FieldType::session_file: return "x.jsonl";
    case FieldType::boolean: return true;
    case FieldType::integer:
    case FieldType::unsigned_integer: return 1;
    case FieldType::array: return json::array();
    case FieldType::object: return json::object();
  }
  return nullptr;
}

}  // namespace

TEST_F(Principals, AnotherPrincipalsSessionIdGetsSessionNotFoundForEveryCommandAndChangesNothing) {
  auto alice = connect("alice-token");
  auto bob = connect("bob-token");
  create(*alice, "a1");
  run_prompt(*alice, "a1", "stream 2", "p1");
  auto before = alice->request({{"type", "get_state"}, {"id", "v0"}, {"sessionId", "a1"}});
  // Its command_finished follows the response: read it before counting alice's frames.
  ASSERT_TRUE(alice->seen_or_wait([](const json& j) {
    return j.value("type", "") == "command_finished" && j["data"].value("commandId", "") == "v0";
  }));
  std::size_t alice_frames = alice->history().size();

  // Every row of the command table that names a session (a new row is covered as it lands),
  // one type the table does not know, and resume / preconditions.
  std::vector<json> commands;
  for (const auto& spec : pi_server::protocol::all_commands()) {
    if (!spec.needs_session) continue;
    json cmd = {{"type", std::string(spec.name)}};
    for (const auto& f : spec.fields)
      if (f.required) cmd[std::string(f.name)] = sample(f.type);
    commands.push_back(cmd);
  }
  commands.push_back({{"type", "frobnicate"}});
  commands.push_back({{"type", "switch_session"}, {"afterSeq", 0}});
  commands.push_back({{"type", "get_state"}, {"ifSessionVersion", 0}});
  int n = 0;
  for (json cmd : commands) {
    cmd["sessionId"] = "a1";
    cmd["id"] = "b" + std::to_string(n++);
    auto r = bob->request(cmd);
    EXPECT_EQ(r.value("code", ""), "session_not_found") << cmd.dump() << " -> " << r.dump();
    EXPECT_EQ(r.value("error", ""), "Session not found: a1") << cmd.dump();
  }
  EXPECT_GT(n, 40);
  // Nothing reached alice's session: no event, no version change, still there, still hers.
  EXPECT_FALSE(alice->wait_for([](const json& j) { return j.value("type", "") == "event"; },
                               std::chrono::milliseconds(500)));
  EXPECT_EQ(alice->history().size(), alice_frames) << alice->history().back().dump();
  auto after = alice->request({{"type", "get_state"}, {"id", "v1"}, {"sessionId", "a1"}});
  EXPECT_EQ(after["sessionVersion"], before["sessionVersion"]);
  EXPECT_EQ(listed(*alice, "l"), std::vector<std::string>{"a1"});
  for (const auto& j : bob->history()) EXPECT_NE(j.value("type", ""), "event") << j.dump();
}

TEST_F(Principals, ListSessionsIsPerPrincipalAndAnAdminSeesAndActsOnAll) {
  auto alice = connect("alice-token");
  auto bob = connect("bob-token");
  auto root = connect("root-token");
  create(*alice, "a1");
  create(*bob, "b1");
  EXPECT_EQ(listed(*alice, "l1"), std::vector<std::string>{"a1"});
  EXPECT_EQ(listed(*bob, "l1"), std::vector<std::string>{"b1"});
  EXPECT_EQ(listed(*root, "l1"), (std::vector<std::string>{"a1", "b1"}));
  auto state = root->request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "a1"}});
  EXPECT_EQ(state["success"], true) << state.dump();
  auto del = root->request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "b1"}}, std::chrono::seconds(30));
  EXPECT_EQ(del["success"], true) << del.dump();
  EXPECT_TRUE(bob->seen_or_wait([](const json& j) { return j.value("type", "") == "session_deleted"; }))
      << "the owner hears that an admin deleted its session";
  EXPECT_TRUE(listed(*bob, "l2").empty());
}

TEST_F(Principals, SessionCreatedReachesOnlyTheOwnerAndAdmins) {
  auto alice = connect("alice-token");
  auto alice2 = connect("alice-token");
  auto bob = connect("bob-token");
  auto root = connect("root-token");
  create(*alice, "a1");
  EXPECT_TRUE(alice2->wait_for([](const json& j) { return j.value("type", "") == "session_created"; }));
  EXPECT_TRUE(root->wait_for([](const json& j) { return j.value("type", "") == "session_created"; }));
  // bob's next frame is the answer to its own command: no session_created came before it.
  bob->request({{"type", "list_sessions"}, {"id", "after"}});
  EXPECT_EQ(count(*bob, "session_created"), 0u);
}

TEST_F(Principals, TheSameCommandIdFromTwoPrincipalsIsNotAReplay) {
  auto alice = connect("alice-token");
  auto bob = connect("bob-token");
  create(*alice, "a1");
  create(*bob, "b1");
  auto a = alice->request({{"type", "set_session_name"}, {"id", "same"}, {"idempotencyKey", "k"},
                           {"sessionId", "a1"}, {"name", "x"}});
  ASSERT_EQ(a["success"], true);
  auto b = bob->request({{"type", "set_session_name"}, {"id", "same"}, {"idempotencyKey", "k"},
                         {"sessionId", "b1"}, {"name", "y"}});
  EXPECT_EQ(b["success"], true) << "not a conflict: " << b.dump();
  EXPECT_FALSE(b.value("replayed", false));
  auto l = bob->request({{"type", "list_sessions"}, {"id", "create-a1"}});
  EXPECT_FALSE(l.value("replayed", false)) << "alice's create-a1 is not bob's";
  EXPECT_TRUE(l["data"]["sessions"].is_array());
}
