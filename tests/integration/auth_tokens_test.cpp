// Static bearer tokens (--auth-tokens, DESIGN §9) and safe binds, through the real daemon:
// every refusal as pinned (401 at the upgrade), the valid cases let in as their principal.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "auth/crypto.hpp"
#include "daemon.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
using namespace pi_server;

namespace {

constexpr const char* kAliceToken = "alice-secret-token-0123456789";
constexpr const char* kBobToken = "bob-secret-token-9876543210";

// A token file in its own directory (removed with it).
class TokenFile {
 public:
  explicit TokenFile(const std::string& text) { write(text); }
  void write(const std::string& text) {
    std::ofstream(path_) << text;
  }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_ = dir_.path() + "/tokens";
};

ClientOptions with_token(const std::string& token) { return {.bearer_token = token}; }

}  // namespace

TEST(AuthTokens, NoTokenAndAWrongTokenGet401) {
  TokenFile tokens(std::string(kAliceToken) + " alice\n");
  Daemon d({.args = {"--auth-tokens", tokens.path()}});
  auto none = try_upgrade(d.port(), {});
  EXPECT_EQ(none.status, 401u);
  EXPECT_EQ(none.header("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(try_upgrade(d.port(), with_token("not-a-token")).status, 401u);
  EXPECT_EQ(try_upgrade(d.port(), {.subprotocols = "pi-server.v1, bearer.wrong"}).status, 401u);
  EXPECT_EQ(try_upgrade(d.port(), {.headers = {{"Authorization", "Basic YWxpY2U6eA=="}}}).status,
            401u);
  EXPECT_THROW(WsClient(d.port()), std::exception);
  // Nothing got in: no connection was opened.
  EXPECT_TRUE(d.logs_with_msg("connection_opened").empty());
}

TEST(AuthTokens, BearerHeaderAndSubprotocolBothLetTheTokensPrincipalIn) {
  TokenFile tokens(std::string("# who may connect\n") + kAliceToken + " alice\n\n" + kBobToken +
                   "  bob   admin  # the operator\n");
  Daemon d({.args = {"--auth-tokens", tokens.path()}});
  WsClient alice(d.port(), with_token(kAliceToken));
  auto ready = alice.next();
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["type"], "server_ready");
  auto alice_line = connection_opened_as(d, "alice");
  ASSERT_TRUE(alice_line);
  EXPECT_EQ((*alice_line)["admin"], false);

  // Browsers: the token as a subprotocol next to pi-server.v1, which the server answers.
  WsClient bob(d.port(), {.subprotocols = std::string("pi-server.v1, bearer.") + kBobToken});
  EXPECT_EQ(bob.accepted_subprotocol(), "pi-server.v1");
  ASSERT_TRUE(bob.next());
  auto bob_line = connection_opened_as(d, "bob");
  ASSERT_TRUE(bob_line);
  EXPECT_EQ((*bob_line)["admin"], true);
  EXPECT_EQ(bob.request({{"type", "list_sessions"}, {"id", "l"}})["success"], true);
}

TEST(AuthTokens, AHashedTokenIsMatchedByItsDigest) {
  auto digest = auth::sha256(kAliceToken);
  std::string hex;
  for (auto b : digest) {
    char two[3];
    std::snprintf(two, sizeof two, "%02x", b);
    hex += two;
  }
  TokenFile tokens("sha256:" + hex + " alice\n");
  Daemon d({.args = {"--auth-tokens", tokens.path()}});
  WsClient alice(d.port(), with_token(kAliceToken));
  EXPECT_TRUE(alice.next());
  EXPECT_TRUE(connection_opened_as(d, "alice"));
  // The digest itself is not a token.
  EXPECT_EQ(try_upgrade(d.port(), with_token("sha256:" + hex)).status, 401u);
}

TEST(AuthTokens, SighupReloadAddsAndRemovesTokensAndABadFileKeepsTheOldSet) {
  TokenFile tokens(std::string(kAliceToken) + " alice\n");
  Daemon d({.args = {"--auth-tokens", tokens.path()}});
  EXPECT_EQ(try_upgrade(d.port(), with_token(kBobToken)).status, 401u);
  WsClient alice_before(d.port(), with_token(kAliceToken));
  ASSERT_TRUE(alice_before.next());

  tokens.write(std::string(kBobToken) + " bob\n");
  ::kill(d.pid(), SIGHUP);
  ASSERT_TRUE(d.wait_log("credentials_reloaded", std::chrono::seconds(5)));
  EXPECT_EQ(try_upgrade(d.port(), with_token(kBobToken)).status, 101u);
  EXPECT_EQ(try_upgrade(d.port(), with_token(kAliceToken)).status, 401u);
  // A connection already open stays open: it was admitted with the old set.
  EXPECT_EQ(alice_before.request({{"type", "list_sessions"}, {"id", "l"}})["success"], true);

  tokens.write("only-one-field\n");
  ::kill(d.pid(), SIGHUP);
  auto failed = d.wait_log("credential_reload_failed", std::chrono::seconds(5));
  ASSERT_TRUE(failed);
  EXPECT_NE((*failed)["error"].get<std::string>().find("line 1"), std::string::npos) << *failed;
  EXPECT_EQ(try_upgrade(d.port(), with_token(kBobToken)).status, 101u) << "the old set stays";
  EXPECT_EQ(d.signal_and_wait(SIGTERM, std::chrono::seconds(15)), 0);
}

TEST(AuthTokens, RefusalsAreCountedByReasonAndLoggedOncePerAddressNeverWithTheToken) {
  TokenFile tokens(std::string(kAliceToken) + " alice\n");
  Daemon d({.args = {"--auth-tokens", tokens.path()}});
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(try_upgrade(d.port(), with_token("wrong-token-" + std::to_string(i))).status, 401u);
  EXPECT_EQ(try_upgrade(d.port(), {}).status, 401u);
  WsClient alice(d.port(), with_token(kAliceToken));
  ASSERT_TRUE(alice.next());
  auto metrics = alice.request({{"type", "get_metrics"}, {"id", "m"}})["data"];
  EXPECT_EQ(metrics["authRefusals"]["bad_token"], 5);
  EXPECT_EQ(metrics["authRefusals"]["missing_credentials"], 1);
  EXPECT_GE(metrics["authAdmitted"].get<int>(), 1);
  auto prom = http_get(d.port(), "/metrics");
  EXPECT_NE(prom.body.find("pi_server_auth_refusals_total{reason=\"bad_token\"} 5"),
            std::string::npos);

  // One line for the first refusal from 127.0.0.1; the rest within the window are folded.
  auto refused = d.logs_with_msg("auth_refused");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["remote"], "127.0.0.1");
  EXPECT_EQ(refused[0]["reason"], "bad_token");
  for (const auto& line : d.logs()) {
    std::string text = line.dump();
    EXPECT_EQ(text.find("wrong-token-"), std::string::npos) << text;
    EXPECT_EQ(text.find(kAliceToken), std::string::npos) << text;
  }
}

TEST(AuthTokens, MetricsAuthPutsMetricsBehindTheTokensButNotTheProbes) {
  TokenFile tokens(std::string(kAliceToken) + " alice\n");
  Daemon d({.args = {"--auth-tokens", tokens.path(), "--metrics-auth"}});
  EXPECT_EQ(http_get(d.port(), "/metrics").status, 401u);
  EXPECT_EQ(http_get(d.port(), "/metrics", with_token("nope")).status, 401u);
  auto ok = http_get(d.port(), "/metrics", with_token(kAliceToken));
  EXPECT_EQ(ok.status, 200u);
  EXPECT_NE(ok.body.find("pi_server_auth_refusals_total"), std::string::npos);
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
  EXPECT_EQ(http_get(d.port(), "/readyz").status, 200u);
  // Without --metrics-auth, /metrics stays open even with tokens on.
  Daemon open({.args = {"--auth-tokens", tokens.path()}});
  EXPECT_EQ(http_get(open.port(), "/metrics").status, 200u);
}

TEST(AuthTokens, ABadTokenFileAtStartExits2) {
  TokenFile tokens("tok alice superuser\n");
  auto [code, err] = run_daemon_to_exit({"--listen", "127.0.0.1:0", "--auth-tokens", tokens.path()});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("third field must be 'admin'"), std::string::npos) << err;
  auto [missing_code, missing_err] =
      run_daemon_to_exit({"--listen", "127.0.0.1:0", "--auth-tokens", "/nonexistent/tokens"});
  EXPECT_EQ(missing_code, 2);
  EXPECT_NE(missing_err.find("cannot read token file"), std::string::npos) << missing_err;
}

TEST(SafeBind, NonLoopbackWithoutAuthExits2WithTheReason) {
  auto [code, err] = run_daemon_to_exit({"--listen", "0.0.0.0:0"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("refusing to listen on non-loopback 0.0.0.0 without authentication"),
            std::string::npos)
      << err;
  auto [metrics_code, metrics_err] = run_daemon_to_exit({"--listen", "127.0.0.1:0", "--metrics-auth"});
  EXPECT_EQ(metrics_code, 2);
  EXPECT_NE(metrics_err.find("--metrics-auth: needs"), std::string::npos) << metrics_err;
}

TEST(SafeBind, InsecureNoAuthStartsOnAnyAddressWithAWarning) {
  Daemon d({.args = {"--insecure-no-auth"}, .listen = "0.0.0.0:0"});
  auto warning = d.wait_log("insecure_no_auth", std::chrono::seconds(5));
  ASSERT_TRUE(warning);
  EXPECT_EQ((*warning)["level"], "warn");
  WsClient c(d.port());
  EXPECT_TRUE(c.next());
}

TEST(SafeBind, NonLoopbackWithTokensStartsAndDemandsThem) {
  TokenFile tokens(std::string(kAliceToken) + " alice\n");
  Daemon d({.args = {"--auth-tokens", tokens.path()}, .listen = "0.0.0.0:0"});
  EXPECT_TRUE(d.logs_with_msg("insecure_no_auth").empty());
  EXPECT_EQ(try_upgrade(d.port(), {}).status, 401u);
  WsClient alice(d.port(), with_token(kAliceToken));
  EXPECT_TRUE(alice.next());
}

TEST(SafeBind, LoopbackWithoutAuthActsForTheLocalPrincipal) {
  Daemon d;
  WsClient c(d.port());
  EXPECT_TRUE(c.next());
  EXPECT_TRUE(connection_opened_as(d, "local"));
}
