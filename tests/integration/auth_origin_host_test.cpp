// Origin and Host checks at the door (DESIGN §9): browser pages of other sites and DNS
// rebinding get 403, before any credential is looked at.
#include <gtest/gtest.h>

#include <fstream>

#include "daemon.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

TEST(AuthOriginHost, AnOriginNotAllowedGets403AndNoOriginIsFine) {
  Daemon d({.args = {"--allow-origin", "https://ok.example"}});
  auto refused = try_upgrade(d.port(), {.headers = {{"Origin", "https://evil.example"}}});
  EXPECT_EQ(refused.status, 403u);
  EXPECT_EQ(refused.body, R"({"error":"origin not allowed"})");
  // "null" (sandboxed frames, file://) is an origin like any other.
  EXPECT_EQ(try_upgrade(d.port(), {.headers = {{"Origin", "null"}}}).status, 403u);
  WsClient allowed(d.port(), {.headers = {{"Origin", "https://ok.example"}}});
  EXPECT_TRUE(allowed.next());
  WsClient none(d.port());
  EXPECT_TRUE(none.next());
  auto metrics = none.request({{"type", "get_metrics"}, {"id", "m"}})["data"];
  EXPECT_EQ(metrics["authRefusals"]["origin_not_allowed"], 2);
}

TEST(AuthOriginHost, WithoutAllowOriginEveryOriginIsRefused) {
  Daemon d;
  EXPECT_EQ(try_upgrade(d.port(), {.headers = {{"Origin", "http://127.0.0.1:3141"}}}).status, 403u);
}

TEST(AuthOriginHost, ARebindingHostNameGets403OnUpgradesAndMetricsButNotProbes) {
  Daemon d;
  // A page on attacker.example whose DNS now points at 127.0.0.1: no Origin trick needed
  // for a plain GET, and the upgrade may come from an allowed origin; the Host gives it away.
  EXPECT_EQ(try_upgrade(d.port(), {.host = "attacker.example"}).status, 403u);
  EXPECT_EQ(try_upgrade(d.port(), {.host = "attacker.example:3141"}).status, 403u);
  auto metrics = http_get(d.port(), "/metrics", {.host = "attacker.example"});
  EXPECT_EQ(metrics.status, 403u);
  EXPECT_EQ(metrics.body, R"({"error":"host not allowed"})");
  EXPECT_EQ(http_get(d.port(), "/healthz", {.host = "attacker.example"}).status, 200u);
  // Loopback names and literals are fine.
  for (std::string host : {"localhost", "localhost:80", "LOCALHOST.", "app.localhost", "127.0.0.1",
                           "127.0.0.2:1", "[::1]:3141"})
    EXPECT_EQ(try_upgrade(d.port(), {.host = host}).status, 101u) << host;
  EXPECT_EQ(try_upgrade(d.port(), {.host = "10.1.2.3"}).status, 403u)
      << "bound to 127.0.0.1: another address is not ours";
}

TEST(AuthOriginHost, AllowHostAddsNames) {
  Daemon d({.args = {"--allow-host", "pi.internal.example"}});
  EXPECT_EQ(try_upgrade(d.port(), {.host = "pi.internal.example:3141"}).status, 101u);
  EXPECT_EQ(try_upgrade(d.port(), {.host = "PI.Internal.Example"}).status, 101u);
  EXPECT_EQ(try_upgrade(d.port(), {.host = "other.example"}).status, 403u);
}

TEST(AuthOriginHost, BoundToAllAddressesAnyIpLiteralIsAcceptedButNotNames) {
  TempDir dir;
  std::ofstream(dir.path() + "/tokens") << "tok-0123456789abcdef alice\n";
  Daemon d({.args = {"--auth-tokens", dir.path() + "/tokens"}, .listen = "0.0.0.0:0"});
  EXPECT_EQ(try_upgrade(d.port(), {.host = "192.0.2.7", .bearer_token = "tok-0123456789abcdef"}).status,
            101u);
  EXPECT_EQ(try_upgrade(d.port(), {.host = "evil.example", .bearer_token = "tok-0123456789abcdef"}).status,
            403u);
}
