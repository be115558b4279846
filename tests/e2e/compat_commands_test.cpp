// Protocol 1.x commands pi 0.87.1 has no RPC for, answered by the daemon from what pi does
// have (measured here against the real pinned pi), and the bad-input rules around relaying.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "daemon.hpp"
#include "operator_setup.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A provider that never answers: a listening socket nobody accepts from. The kernel completes
// the TCP handshake (backlog), so pi's request is sent and then waits forever.
class BlackHole {
 public:
  BlackHole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~BlackHole() { ::close(fd_); }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class CompatCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(PI_SERVER_DEFAULT_AGENT, X_OK), 0) << "the pinned pi is missing: run scripts/setup";
    write_operator_setup(operator_dir.path(), provider, {{"hole", provider_entry(hole.base_url())}});
    // Small sessions can be compacted (pi keeps the last 20k tokens by default).
    write_file(fs::path(operator_dir.path()) / "settings.json",
               {{"defaultProvider", "acme-local"}, {"defaultModel", "m1"},
                {"compaction", {{"keepRecentTokens", 10}}}});
    write_text(fs::path(operator_dir.path()) / "skills" / "repo-lint" / "SKILL.md",
               "---\nname: repo-lint\ndescription: Lints the repository before a commit.\n---\n"
               "Run the linter and report.\n");
    daemon = std::make_unique<Daemon>(Daemon::Options{
        .use_fake_agent = false, .env = {"PI_CODING_AGENT_DIR=" + operator_dir.path()}});
    client = std::make_unique<WsClient>(daemon->port());
    open_session(*client, "s");
  }
  static void write_text(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
  json request(json cmd, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    cmd["sessionId"] = "s";
    return client->request(cmd, timeout);
  }

  MockProvider provider;
  BlackHole hole;
  TempDir operator_dir;
  std::unique_ptr<Daemon> daemon;
  std::unique_ptr<WsClient> client;
};

}  // namespace

TEST_F(CompatCommands, ContextUsageComesFromSessionStats) {
  run_prompt(*client, "s", "stream 3", "p", std::chrono::seconds(60));
  auto r = request({{"type", "get_context_usage"}, {"id", "u"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  EXPECT_EQ(r["command"], "get_context_usage");
  EXPECT_EQ(r["data"]["contextWindow"], 128000);
  EXPECT_TRUE(r["data"]["tokens"].is_number()) << r.dump();
  EXPECT_TRUE(r["data"]["percent"].is_number()) << r.dump();
  auto stats = request({{"type", "get_session_stats"}, {"id", "st"}});
  EXPECT_EQ(stats["data"]["contextUsage"], r["data"]) << "the same numbers pi reports";
  EXPECT_EQ(r["sessionVersion"], stats["sessionVersion"]) << "a read: no version bump";
}

TEST_F(CompatCommands, SkillsAreThoseGetCommandsListsAsSkills) {
  auto r = request({{"type", "get_skills"}, {"id", "k"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  ASSERT_EQ(r["data"]["skills"].size(), 1u) << r.dump();
  const auto& skill = r["data"]["skills"][0];
  EXPECT_EQ(skill["name"], "repo-lint");
  EXPECT_EQ(skill["description"], "Lints the repository before a commit.");
  EXPECT_NE(skill.value("path", "").find("repo-lint/SKILL.md"), std::string::npos) << skill.dump();
}

TEST_F(CompatCommands, SessionFilesListTheCurrentOne) {
  run_prompt(*client, "s", "stream 2", "p", std::chrono::seconds(60));
  auto state = request({{"type", "get_state"}, {"id", "g"}});
  auto r = request({{"type", "list_session_files"}, {"id", "f"}});
  ASSERT_EQ(r["success"], true) << r.dump();
  ASSERT_EQ(r["data"]["files"].size(), 1u) << r.dump();
  const auto& file = r["data"]["files"][0];
  EXPECT_EQ(file["path"], state["data"]["sessionFile"]);
  EXPECT_EQ(file["current"], true);
  EXPECT_GT(file["size"].get<std::int64_t>(), 0);
  EXPECT_GT(file["modifiedAt"].get<std::int64_t>(), 1700000000000);
  // A new session file appears beside it and becomes the current one.
  request({{"type", "new_session"}, {"id", "n"}});
  run_prompt(*client, "s", "stream 1", "p2", std::chrono::seconds(60));
  auto after = request({{"type", "list_session_files"}, {"id", "f2"}});
  ASSERT_EQ(after["data"]["files"].size(), 2u) << after.dump();
  int current = 0;
  for (const auto& f : after["data"]["files"]) current += f["current"].get<bool>();
  EXPECT_EQ(current, 1);
}

TEST_F(CompatCommands, WhatPiCannotSupplyIsUnsupportedAndUnknownTypesGetACode) {
  for (auto type : {"get_tools", "navigate_tree"}) {
    json cmd = {{"type", type}, {"id", std::string("x-") + type}};
    if (std::string(type) == "navigate_tree") cmd["targetId"] = "e1";
    auto r = request(cmd);
    EXPECT_EQ(r["success"], false);
    EXPECT_EQ(r["code"], "unsupported") << r.dump();
    EXPECT_NE(r["error"].get<std::string>().find("no RPC command"), std::string::npos);
  }
  // Relayed to pi, which does not know it: pi's answer gets a code.
  auto unknown = request({{"type", "frobnicate"}, {"id", "fz"}});
  EXPECT_EQ(unknown["success"], false);
  EXPECT_EQ(unknown["code"], "unknown_command") << unknown.dump();
  EXPECT_EQ(unknown["error"], "Unknown command: frobnicate");
  // Without a session, the daemon answers at once.
  auto nowhere = client->request({{"type", "frobnicate"}, {"id", "fz2"}});
  EXPECT_EQ(nowhere["code"], "unknown_command");
}

TEST_F(CompatCommands, WrongFieldTypesAreRefusedAndNeverReachPi) {
  auto before = request({{"type", "get_messages"}, {"id", "m0"}});
  for (json bad : {json{{"type", "prompt"}, {"message", 42}}, json{{"type", "bash"}, {"command", json::object()}},
                   json{{"type", "set_auto_compaction"}, {"enabled", "yes"}}}) {
    bad["id"] = "bad-" + bad["type"].get<std::string>();
    auto r = request(bad);
    EXPECT_EQ(r["success"], false);
    EXPECT_EQ(r["code"], "invalid_command") << r.dump();
    EXPECT_NE(r["error"].get<std::string>().find("Field '"), std::string::npos) << r.dump();
  }
  auto after = request({{"type", "get_messages"}, {"id", "m1"}});
  EXPECT_EQ(after["data"]["messages"], before["data"]["messages"]) << "nothing ran";
  EXPECT_EQ(after["sessionVersion"], before["sessionVersion"]);
}

// What pi needs to stop a running compaction, measured: pi's `abort` (AgentSession.abort
// calls abortCompaction). The daemon sends it only while a compaction runs.
TEST_F(CompatCommands, AbortCompactionStopsARunningCompactAndIsANoOpWhileIdle) {
  auto idle = request({{"type", "abort_compaction"}, {"id", "a0"}});
  EXPECT_EQ(idle["success"], true);
  EXPECT_EQ(idle["data"]["aborted"], false);

  // Two turns, the last one longer than keepRecentTokens: the first is what gets summarized.
  run_prompt(*client, "s", "stream 50", "p1", std::chrono::seconds(60));
  run_prompt(*client, "s", "stream 50", "p2", std::chrono::seconds(60));
  // Compact on a provider that never answers, so the compaction is still running when the
  // abort comes (it bypasses the lane the compact holds).
  auto set = request({{"type", "set_model"}, {"id", "sm"}, {"provider", "hole"}, {"modelId", "m1"}});
  ASSERT_EQ(set["success"], true) << set.dump();
  client->send({{"type", "compact"}, {"id", "c"}, {"sessionId", "s"}});
  auto started = client->wait_for([](const json& j) { return is_event(j, "s", "compaction_start"); },
                                  std::chrono::seconds(30));
  ASSERT_TRUE(started);
  auto aborted = request({{"type", "abort_compaction"}, {"id", "a1"}});
  EXPECT_EQ(aborted["success"], true) << aborted.dump();
  EXPECT_EQ(aborted["data"]["aborted"], true);
  auto compact = client->seen_or_wait([](const json& j) { return is_response(j, "c"); },
                                      std::chrono::seconds(30));
  ASSERT_TRUE(compact) << "the compact must end";
  EXPECT_EQ((*compact)["success"], false) << compact->dump();
  auto end = client->seen_or_wait([](const json& j) { return is_event(j, "s", "compaction_end"); },
                                  std::chrono::seconds(5));
  ASSERT_TRUE(end);
  EXPECT_EQ((*end)["event"]["aborted"], true) << end->dump();
  // The session still works.
  request({{"type", "set_model"}, {"id", "sm2"}, {"provider", "acme-local"}, {"modelId", "m1"}});
  run_prompt(*client, "s", "stream 1", "p3", std::chrono::seconds(60));
}
