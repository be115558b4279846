// SIGHUP re-reads the config file: the log level changes at once, other changed keys are
// named as needing a restart, a broken file changes nothing (docs/operations.md, "Reload").
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "daemon.hpp"
#include "ws_client.hpp"

namespace pi_server::testing {
namespace {

TEST(Reload, SighupAppliesTheLogLevelAndNamesWhatNeedsARestart) {
  TempDir dir;
  const std::string config = dir.path() + "/pi-server.toml";
  std::ofstream(config) << "log-level = \"info\"\nmax-sessions = 8\ndrain-timeout-ms = 5000\n";
  Daemon d({.args = {"--config", config}, .log_level = ""});
  { WsClient c(d.port()); }  // at info: no connection logs
  EXPECT_TRUE(d.logs_with_msg("connection_opened").empty());

  std::ofstream(config) << "log-level = \"debug\"\nmax-sessions = 1\ndrain-timeout-ms = 6000\n";
  ::kill(d.pid(), SIGHUP);
  auto reload = d.wait_log("reload", std::chrono::seconds(10));
  ASSERT_TRUE(reload);
  EXPECT_EQ((*reload)["steps"]["log"]["ok"], true);
  EXPECT_EQ((*reload)["steps"]["log"]["detail"], "log-level");
  // max-connections is not set: it is sized from the descriptor limit and max-sessions, so
  // the new max-sessions re-sizes it (fewer possible agents leave more for connections).
  const std::string limits_detail = (*reload)["steps"]["limits"]["detail"];
  EXPECT_EQ(limits_detail.rfind("max-sessions 1, max-connections ", 0), 0u) << limits_detail;
  auto restart = d.wait_log("reload_needs_restart", std::chrono::seconds(5));
  ASSERT_TRUE(restart);
  EXPECT_EQ((*restart)["keys"]["drain-timeout-ms"]["running"], "5000");
  EXPECT_EQ((*restart)["keys"]["drain-timeout-ms"]["file"], "6000");
  EXPECT_FALSE((*restart)["keys"].contains("log-level"));
  EXPECT_FALSE((*restart)["keys"].contains("max-sessions"));

  {
    WsClient c(d.port());  // now at debug
    EXPECT_TRUE(d.wait_log("connection_opened", std::chrono::seconds(5)));
    // The new session cap is in force: one session, the second is refused.
    auto ready = c.next();
    ASSERT_TRUE(ready);
    EXPECT_EQ((*ready)["data"]["limits"]["maxSessions"], 1);
    EXPECT_EQ("max-sessions 1, max-connections " +
                  (*ready)["data"]["limits"]["maxConnections"].dump(),
              limits_detail);
    EXPECT_EQ(c.request({{"type", "create_session"}, {"id", "c1"}, {"sessionId", "a"}})["success"], true);
    EXPECT_EQ(c.request({{"type", "create_session"}, {"id", "c2"}, {"sessionId", "b"}})["code"], "limit_reached");
  }

  std::ofstream(config) << "log-level = \"debug\"\nmax-sesions = 9\n";
  ::kill(d.pid(), SIGHUP);
  auto failed = d.wait_log("reload_failed", std::chrono::seconds(10));
  ASSERT_TRUE(failed);
  EXPECT_EQ((*failed)["error"], "pi-server: " + config + ":2: key 'max-sesions': unknown key (keys are the long flag names of pi-server --help)");
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
  EXPECT_EQ(d.signal_and_wait(SIGTERM, std::chrono::seconds(15)), 0);
}

}  // namespace
}  // namespace pi_server::testing
