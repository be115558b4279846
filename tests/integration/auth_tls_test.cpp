// TLS on the listener (--tls-cert/--tls-key, DESIGN §11) with a self-signed certificate made
// in the test by the openssl CLI: wss:// and https:// work, a plain client gets nothing, and
// SIGHUP swaps the certificate for new handshakes without dropping open connections.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "daemon.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

// A self-signed EC certificate and its key for this common name, written into `dir`.
void make_certificate(const std::string& dir, const std::string& common_name) {
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                    "-keyout '" + dir + "/key.pem' -out '" + dir + "/cert.pem' -subj '/CN=" +
                    common_name + "' -days 1 >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::vector<std::string> tls_args(const std::string& dir) {
  return {"--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"};
}

ClientOptions tls() { return {.tls = true}; }

}  // namespace

TEST(AuthTls, WssAndHttpsWorkAndAPlainClientGetsNoSession) {
  TempDir dir;
  make_certificate(dir.path(), "localhost");
  Daemon d({.args = tls_args(dir.path())});
  auto listening = d.logs_with_msg("listening");
  ASSERT_EQ(listening.size(), 1u);
  EXPECT_EQ(listening[0]["tls"], true);

  WsClient secure(d.port(), tls());
  EXPECT_EQ(secure.peer_certificate_subject(), "/CN=localhost");
  auto ready = secure.next();
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["type"], "server_ready");
  EXPECT_EQ(secure.request({{"type", "create_session"}, {"id", "c"}, {"sessionId", "s"}})["success"],
            true);
  EXPECT_EQ(http_get(d.port(), "/healthz", tls()).status, 200u);
  auto metrics = http_get(d.port(), "/metrics", tls());
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.body.find("pi_server_sessions 1"), std::string::npos);

  // ws:// and http:// to the TLS port: the TLS handshake fails, nothing is answered.
  EXPECT_THROW(try_upgrade(d.port(), {}), std::exception);
  EXPECT_THROW(WsClient plain(d.port()), std::exception);
  EXPECT_THROW(http_get(d.port(), "/healthz"), std::exception);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int opened = 0;
  for (const auto& line : d.logs_with_msg("connection_opened")) opened += line["transport"] == "websocket";
  EXPECT_EQ(opened, 1) << "only the wss:// client got a session";
}

TEST(AuthTls, SighupSwapsTheCertificateForNewHandshakesAndKeepsOpenConnections) {
  TempDir dir;
  make_certificate(dir.path(), "first.example");
  Daemon d({.args = tls_args(dir.path())});
  WsClient before(d.port(), tls());
  EXPECT_EQ(before.peer_certificate_subject(), "/CN=first.example");
  ASSERT_TRUE(before.next());

  make_certificate(dir.path(), "second.example");
  ::kill(d.pid(), SIGHUP);
  ASSERT_TRUE(d.wait_log("tls_reloaded", std::chrono::seconds(5)));
  WsClient after(d.port(), tls());
  EXPECT_EQ(after.peer_certificate_subject(), "/CN=second.example");
  ASSERT_TRUE(after.next());
  EXPECT_EQ(before.request({{"type", "list_sessions"}, {"id", "still-open"}})["success"], true)
      << "the connection made with the old certificate stays open";

  // A broken file on reload: logged, the current certificate stays.
  std::ofstream(dir.path() + "/cert.pem") << "not a certificate\n";
  ::kill(d.pid(), SIGHUP);
  auto failed = d.wait_log("tls_reload_failed", std::chrono::seconds(5));
  ASSERT_TRUE(failed);
  WsClient third(d.port(), tls());
  EXPECT_EQ(third.peer_certificate_subject(), "/CN=second.example");
  EXPECT_TRUE(third.next());
}

TEST(AuthTls, TokensOverTlsAndABadCertificateAtStartExits2) {
  TempDir dir;
  make_certificate(dir.path(), "localhost");
  std::ofstream(dir.path() + "/tokens") << "tls-token-0123456789 grace\n";
  auto args = tls_args(dir.path());
  args.insert(args.end(), {"--auth-tokens", dir.path() + "/tokens", "--metrics-auth"});
  Daemon d({.args = args, .listen = "0.0.0.0:0"});
  EXPECT_EQ(try_upgrade(d.port(), {.tls = true}).status, 401u);
  WsClient grace(d.port(), {.bearer_token = "tls-token-0123456789", .tls = true});
  EXPECT_TRUE(grace.next());
  EXPECT_EQ(http_get(d.port(), "/metrics", {.tls = true}).status, 401u);
  EXPECT_EQ(http_get(d.port(), "/metrics", {.bearer_token = "tls-token-0123456789", .tls = true}).status,
            200u);

  std::ofstream(dir.path() + "/bad.pem") << "garbage\n";
  auto [code, err] = run_daemon_to_exit(
      {"--listen", "127.0.0.1:0", "--tls-cert", dir.path() + "/bad.pem", "--tls-key", dir.path() + "/key.pem"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("TLS certificate"), std::string::npos) << err;
  auto [half_code, half_err] = run_daemon_to_exit({"--listen", "127.0.0.1:0", "--tls-cert", dir.path() + "/cert.pem"});
  EXPECT_EQ(half_code, 2);
  EXPECT_NE(half_err.find("--tls-cert: needs --tls-key"), std::string::npos) << half_err;
}
