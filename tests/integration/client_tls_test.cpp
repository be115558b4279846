// pi-server-client over wss:// and with a bearer token, against a small TLS WebSocket server
// in Python (python3-websockets; the daemon on this branch serves no TLS): certificate checks
// (--ca-file, --insecure, no trust), the Authorization header from each token source, and
// exit code 4 for a refused upgrade.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "client_run.hpp"
#include "daemon.hpp"

namespace pi_server::testing {
namespace {

// Answers each command with a response whose data.auth is the Authorization header it got;
// refuses the upgrade with 401 when the header is "Bearer wrong".
constexpr const char* kServer = R"PY(
import asyncio, http, json, ssl, sys
import websockets

async def check(path, headers):
    if headers.get("Authorization") == "Bearer wrong":
        return http.HTTPStatus.UNAUTHORIZED, [], b"unauthorized\n"

async def handler(ws, path):
    auth = ws.request_headers.get("Authorization")
    await ws.send(json.dumps({"type": "server_ready", "data": {}}))
    async for text in ws:
        cmd = json.loads(text)
        await ws.send(json.dumps({"type": "response", "id": cmd["id"], "command": cmd["type"],
                                  "success": True, "data": {"auth": auth}}))

async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, process_request=check) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
)PY";

class ClientTls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (run_command("/usr/bin/python3 -c 'import websockets; print(1)' 2>/dev/null").output != "1\n")
      GTEST_SKIP() << "python3-websockets is not installed (scripts/setup installs it)";
    cert_ = dir_.path() + "/cert.pem";
    key_ = dir_.path() + "/key.pem";
    run_command("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key_ + " -out " + cert_ +
                " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null");
    std::ofstream(dir_.path() + "/server.py") << kServer;
    agent::SpawnRequest req;
    req.argv = {"/usr/bin/python3", dir_.path() + "/server.py", cert_, key_};
    req.env = {"PATH=/usr/bin:/bin"};
    auto spawned = agent::spawn_process(req);
    ASSERT_TRUE(spawned) << spawned.error();
    server_ = spawned.value();
    std::string port;
    char c;
    while (::read(server_.stdout_fd, &c, 1) == 1 && c != '\n') port += c;
    ASSERT_FALSE(port.empty()) << "the TLS server did not start";
    url_ = "wss://127.0.0.1:" + port;
  }
  void TearDown() override {
    if (server_.pid <= 0) return;
    ::kill(server_.pid, SIGKILL);
    siginfo_t info{};
    ::waitid(P_PID, static_cast<id_t>(server_.pid), &info, WEXITED);
    for (int fd : {server_.pidfd, server_.stdin_fd, server_.stdout_fd, server_.stderr_fd}) ::close(fd);
  }
  // The data.auth the server saw, from `send` with one command.
  nlohmann::json auth_seen(const ClientRun& run) {
    auto nl = run.out.find('\n');
    auto response = nlohmann::json::parse(run.out.substr(nl + 1, run.out.find('\n', nl + 1) - nl - 1));
    return response["data"]["auth"];
  }

  TempDir dir_;
  std::string cert_, key_, url_;
  agent::SpawnedProcess server_{};
};

const std::string kOneCommand = "{\"type\":\"list_sessions\",\"id\":\"l1\"}\n";

TEST_F(ClientTls, VerifiesTheCertificateAgainstCaFile) {
  auto run = run_client({"--url", url_, "--ca-file", cert_, "send"}, kOneCommand);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(auth_seen(run).is_null()) << "no token, no header";

  run = run_client({"--url", url_, "send"}, kOneCommand);
  EXPECT_EQ(run.exit_code, 1) << "a self-signed certificate is not trusted by default";
  EXPECT_NE(run.err.find("TLS handshake"), std::string::npos) << run.err;

  run = run_client({"--url", url_, "--insecure", "send"}, kOneCommand);
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

TEST_F(ClientTls, SendsTheTokenFromFlagFileOrEnvironment) {
  auto run = run_client({"--url", url_, "--ca-file", cert_, "--token", "t-flag", "send"}, kOneCommand);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(auth_seen(run), "Bearer t-flag");

  std::ofstream(dir_.path() + "/token") << "t-file\n";
  run = run_client({"--url", url_, "--ca-file", cert_, "--token-file", dir_.path() + "/token", "send"}, kOneCommand);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(auth_seen(run), "Bearer t-file");

  run = run_client({"--url", url_, "--ca-file", cert_, "send"}, kOneCommand, {"PI_SERVER_TOKEN=t-env"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(auth_seen(run), "Bearer t-env");
}

TEST_F(ClientTls, ARefusedUpgradeExitsFour) {
  auto run = run_client({"--url", url_, "--ca-file", cert_, "--token", "wrong", "sessions"});
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find("HTTP 401"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace pi_server::testing
