// One end-to-end test per command group against the real pinned pi, checking the response
// shapes recorded in ../shared/pi-rpc/README.md §4.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

class RealPiCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(PI_SERVER_DEFAULT_AGENT, X_OK), 0) << "run scripts/setup first";
    daemon_ = std::make_unique<Daemon>(Daemon::Options{.use_fake_agent = false});
    client_ = std::make_unique<WsClient>(daemon_->port());
    open_session(*client_, "s");
  }
  json cmd(json command) {
    command["id"] = "c" + std::to_string(++n_);
    command["sessionId"] = "s";
    return client_->request(command, std::chrono::seconds(60));
  }
  bool saw_event(const std::string& type) {
    for (const auto& j : client_->history())
      if (is_event(j, "s", type)) return true;
    return false;
  }
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<WsClient> client_;
  int n_ = 0;
};

}  // namespace

TEST_F(RealPiCommands, StateAndModelConfiguration) {
  auto state = cmd({{"type", "get_state"}});
  ASSERT_EQ(state["success"], true);
  for (const char* key : {"model", "thinkingLevel", "isStreaming", "isCompacting", "steeringMode",
                          "followUpMode", "sessionId", "autoCompactionEnabled", "messageCount",
                          "pendingMessageCount"})
    EXPECT_TRUE(state["data"].contains(key)) << key;
  EXPECT_EQ(state["data"]["isStreaming"], false);

  auto models = cmd({{"type", "get_available_models"}});
  bool demo = false;
  for (const auto& m : models["data"]["models"]) demo |= m["id"] == "demo-1";
  EXPECT_TRUE(demo);
  auto set = cmd({{"type", "set_model"}, {"provider", "pi-server-demo"}, {"modelId", "demo-1"}});
  EXPECT_EQ(set["data"]["id"], "demo-1");
  auto missing = cmd({{"type", "set_model"}, {"provider", "nope"}, {"modelId", "x"}});
  EXPECT_EQ(missing["success"], false);
  EXPECT_EQ(missing["error"], "Model not found: nope/x");
  EXPECT_FALSE(missing.contains("code")) << "pi's own refusals carry pi's text, no daemon code";

  EXPECT_EQ(cmd({{"type", "get_available_thinking_levels"}})["data"]["levels"], json::array({"off"}));
  // (Measured: on a non-reasoning model the level stays "off" and pi emits no
  // thinking_level_changed for it.)
  EXPECT_EQ(cmd({{"type", "set_thinking_level"}, {"level", "off"}})["success"], true);
  EXPECT_TRUE(cmd({{"type", "cycle_thinking_level"}})["data"].is_null()) << "non-reasoning model";
  for (const char* type : {"set_auto_compaction", "set_auto_retry"})
    EXPECT_EQ(cmd({{"type", type}, {"enabled", true}})["success"], true) << type;
  EXPECT_EQ(cmd({{"type", "set_steering_mode"}, {"mode", "all"}})["success"], true);
  EXPECT_EQ(cmd({{"type", "set_follow_up_mode"}, {"mode", "one-at-a-time"}})["success"], true);
  EXPECT_EQ(cmd({{"type", "get_state"}})["data"]["steeringMode"], "all");
  EXPECT_TRUE(cmd({{"type", "get_commands"}})["data"]["commands"].is_array());
}

TEST_F(RealPiCommands, ConversationReads) {
  run_prompt(*client_, "s", "stream 4", "p1", std::chrono::seconds(60));
  EXPECT_EQ(cmd({{"type", "get_last_assistant_text"}})["data"]["text"], "w0 w1 w2 w3");
  auto stats = cmd({{"type", "get_session_stats"}});
  EXPECT_EQ(stats["data"]["userMessages"], 1);
  EXPECT_EQ(stats["data"]["assistantMessages"], 1);
  auto entries = cmd({{"type", "get_entries"}});
  EXPECT_TRUE(entries["data"]["entries"].is_array());
  EXPECT_TRUE(entries["data"].contains("leafId"));
  auto unknown = cmd({{"type", "get_entries"}, {"since", "no-such-entry"}});
  EXPECT_EQ(unknown["error"], "Entry not found: no-such-entry");
  EXPECT_TRUE(cmd({{"type", "get_tree"}})["data"]["tree"].is_array());
  auto fork_messages = cmd({{"type", "get_fork_messages"}});
  ASSERT_EQ(fork_messages["data"]["messages"].size(), 1u);
  EXPECT_EQ(fork_messages["data"]["messages"][0]["text"], "stream 4");
}

TEST_F(RealPiCommands, QueueingWhileIdle) {
  EXPECT_EQ(cmd({{"type", "steer"}, {"message", "later"}})["success"], true);
  EXPECT_TRUE(saw_event("queue_update"));
  auto cleared = cmd({{"type", "clear_queue"}});
  EXPECT_EQ(cleared["data"]["steering"], json::array({"later"}));
  EXPECT_EQ(cmd({{"type", "follow_up"}, {"message", "after"}})["success"], true);
  EXPECT_EQ(cmd({{"type", "abort"}})["success"], true);
  EXPECT_EQ(cmd({{"type", "abort_retry"}})["success"], true);
  auto missing = cmd({{"type", "prompt"}});
  EXPECT_EQ(missing["success"], false) << "pi's own validation answers";
}

TEST_F(RealPiCommands, BashRunsAndStreamsUnderTheClientsId) {
  auto r = client_->request({{"type", "bash"}, {"id", "my-bash"}, {"sessionId", "s"}, {"command", "echo hello"}},
                            std::chrono::seconds(60));
  ASSERT_EQ(r["success"], true);
  EXPECT_EQ(r["data"]["output"], "hello\n");
  EXPECT_EQ(r["data"]["exitCode"], 0);
  EXPECT_EQ(r["data"]["cancelled"], false);
  bool update = false;
  for (const auto& j : client_->history())
    if (is_event(j, "s", "bash_execution_update")) {
      EXPECT_EQ(j["event"]["id"], "my-bash");
      update = true;
    }
  EXPECT_TRUE(update);
  EXPECT_EQ(cmd({{"type", "abort_bash"}})["success"], true);
}

TEST_F(RealPiCommands, SessionFileCommands) {
  run_prompt(*client_, "s", "first prompt", "p1", std::chrono::seconds(60));
  std::string first_file = cmd({{"type", "get_state"}})["data"]["sessionFile"];
  // Paths a command names must be inside a workspace root; in the state dir, only the
  // session's own folder is (docs/security.md).
  std::string export_path =
      (std::filesystem::canonical(daemon_->state_dir()) / "sessions" / "s" / "export.html").string();
  auto html = cmd({{"type", "export_html"}, {"outputPath", export_path}});
  EXPECT_EQ(html["data"]["path"], export_path) << html.dump();
  EXPECT_TRUE(std::filesystem::exists(export_path));
  EXPECT_EQ(cmd({{"type", "clone"}})["data"]["cancelled"], false);
  EXPECT_EQ(cmd({{"type", "new_session"}})["data"]["cancelled"], false);
  EXPECT_EQ(cmd({{"type", "get_state"}})["data"]["messageCount"], 0);
  auto back = cmd({{"type", "switch_session_file"}, {"sessionPath", first_file}});
  EXPECT_EQ(back["command"], "switch_session_file");
  EXPECT_EQ(back["data"]["cancelled"], false);
  EXPECT_EQ(cmd({{"type", "get_state"}})["data"]["sessionFile"], first_file);
  auto bad_fork = cmd({{"type", "fork"}, {"entryId", "nope"}});
  EXPECT_EQ(bad_fork["error"], "Invalid entry ID for forking");
  auto fm = cmd({{"type", "get_fork_messages"}});
  ASSERT_FALSE(fm["data"]["messages"].empty());
  auto fork = cmd({{"type", "fork"}, {"entryId", fm["data"]["messages"][0]["entryId"]}});
  EXPECT_EQ(fork["data"]["text"], "first prompt");
}

TEST_F(RealPiCommands, CompactReportsItsOutcome) {
  auto small = cmd({{"type", "compact"}});
  EXPECT_EQ(small["success"], false);
  EXPECT_EQ(small["error"], "Nothing to compact (session too small)");
  EXPECT_TRUE(saw_event("compaction_start"));
  EXPECT_TRUE(saw_event("compaction_end"));
}

TEST_F(RealPiCommands, KilledPiIsRestartedOnItsSessionFile) {
  run_prompt(*client_, "s", "remember me", "p1", std::chrono::seconds(60));
  auto before = cmd({{"type", "get_messages"}})["data"]["messages"];
  pid_t pid = 0;
  auto list = client_->request({{"type", "list_sessions"}, {"id", "ls"}});
  pid = list["data"]["sessions"][0]["pid"];
  ::kill(pid, SIGKILL);
  auto exited = client_->wait_for([](const json& j) { return j.value("type", "") == "agent_exited"; },
                                  std::chrono::seconds(30));
  ASSERT_TRUE(exited);
  EXPECT_EQ((*exited)["data"]["restarting"], true);
  ASSERT_TRUE(client_->wait_for([](const json& j) { return j.value("type", "") == "agent_restarted"; },
                                std::chrono::seconds(30)));
  auto after = cmd({{"type", "get_messages"}})["data"]["messages"];
  EXPECT_EQ(after, before) << "pi resumed the same conversation from its session file";
  auto events = run_prompt(*client_, "s", "stream 2", "p2", std::chrono::seconds(60));
  EXPECT_EQ(final_text(events), "w0 w1 ");
}
