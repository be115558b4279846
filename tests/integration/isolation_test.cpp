// Isolation between principals through the real daemon (docs/security.md): caps per principal.
#include <gtest/gtest.h>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

TEST(Isolation, ConnectionsPerPrincipalAreCapped) {
  Daemon::Options o;
  o.args = {"--max-connections-per-principal", "2"};
  Daemon d(o);
  WsClient a(d.port()), b(d.port());
  ASSERT_EQ((*a.next())["type"], "server_ready");
  ASSERT_EQ((*b.next())["type"], "server_ready");
  WsClient c(d.port());
  auto refused = c.next();
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)["code"], "limit_reached") << refused->dump();
  EXPECT_NE((*refused)["error"].get<std::string>().find("principal"), std::string::npos);
  EXPECT_FALSE(c.next(std::chrono::seconds(5))) << "then closed";
  // A slot frees when a connection leaves.
  a.close();
  std::optional<json> ready;
  for (int i = 0; i < 50 && !ready; ++i) {
    WsClient again(d.port());
    auto first = again.next();
    if (first && (*first)["type"] == "server_ready") ready = first;
    else std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(ready);
}

TEST(Isolation, SessionsPerPrincipalAreCapped) {
  Daemon::Options o;
  o.args = {"--max-sessions-per-principal", "1"};
  Daemon d(o);
  WsClient c(d.port());
  open_session(c, "one");
  auto over = c.request({{"type", "create_session"}, {"id", "c2"}, {"sessionId", "two"}}, std::chrono::seconds(30));
  EXPECT_EQ(over["code"], "limit_reached") << over.dump();
  auto del = c.request({{"type", "delete_session"}, {"id", "d"}, {"sessionId", "one"}}, std::chrono::seconds(30));
  ASSERT_EQ(del["success"], true);
  auto now = c.request({{"type", "create_session"}, {"id", "c3"}, {"sessionId", "two"}}, std::chrono::seconds(30));
  EXPECT_EQ(now["success"], true) << now.dump();
}
