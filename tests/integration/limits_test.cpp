// Circuit breakers, rate limits, health and metrics through the real daemon.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <sys/resource.h>
#include <sys/wait.h>

#include "agent/spawner.hpp"
#include "daemon.hpp"
#include "prometheus_check.hpp"
#include "sanitizers.hpp"
#include "raw_socket.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
using namespace pi_server;

TEST(Limits, ProviderErrorsOpenTheCircuitAndAProbeClosesIt) {
  Daemon d({.args = {"--breaker-failures", "3", "--breaker-recovery-ms", "600",
                     "--breaker-half-open-probes", "1"}});
  WsClient c(d.port());
  open_session(c, "cb");
  for (int i = 0; i < 3; ++i) run_prompt(c, "cb", "error 500", "e" + std::to_string(i));
  auto rejected = c.request({{"type", "prompt"}, {"id", "blocked"}, {"sessionId", "cb"}, {"message", "hi"}});
  EXPECT_EQ(rejected["success"], false);
  EXPECT_EQ(rejected["code"], "circuit_open");
  EXPECT_TRUE(rejected["data"]["retryAfterMs"].is_number());
  std::string message = rejected["error"];
  EXPECT_EQ(message.rfind("Circuit open for pi-server-demo (recovery in ", 0), 0u) << message;
  // Read-only commands still work.
  EXPECT_EQ(c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "cb"}})["success"], true);
  auto health = c.request({{"type", "health_check"}, {"id", "h1"}});
  EXPECT_EQ(health["data"]["hasOpenCircuit"], true);
  EXPECT_EQ(health["data"]["status"], "degraded");
  auto metrics = c.request({{"type", "get_metrics"}, {"id", "m1"}});
  EXPECT_EQ(metrics["data"]["circuitBreakers"]["pi-server-demo"]["state"], "open");

  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // recovery time (not a timing assertion)
  run_prompt(c, "cb", "stream 2", "probe");
  auto after = c.request({{"type", "health_check"}, {"id", "h2"}});
  EXPECT_EQ(after["data"]["hasOpenCircuit"], false);
  EXPECT_EQ(after["data"]["status"], "ok");
  EXPECT_EQ(c.request({{"type", "prompt"}, {"id", "again"}, {"sessionId", "cb"}, {"message", "hi"}})["success"], true);
}

TEST(Limits, RateLimitRejectsBeyondTheBurstAndReplaysAreFree) {
  Daemon d({.args = {"--rate-limit", "1", "--rate-burst", "3"}});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(c.request({{"type", "list_sessions"}, {"id", "l" + std::to_string(i)}})["success"], true);
  auto limited = c.request({{"type", "list_sessions"}, {"id", "l3"}});
  EXPECT_EQ(limited["code"], "rate_limited");
  EXPECT_TRUE(limited["data"]["retryAfterMs"].is_number());
  auto replay = c.request({{"type", "list_sessions"}, {"id", "l0"}});
  EXPECT_EQ(replay["replayed"], true) << "replays cost no token";
  // Another connection has its own bucket.
  WsClient other(d.port());
  ASSERT_TRUE(other.next());
  EXPECT_EQ(other.request({{"type", "list_sessions"}, {"id", "o"}})["success"], true);
}

TEST(Limits, MaxSessionsAndMaxConnections) {
  Daemon d({.args = {"--max-sessions", "1", "--max-connections", "2"}});
  WsClient a(d.port());
  open_session(a, "one");
  auto second = a.request({{"type", "create_session"}, {"id", "two"}, {"sessionId", "two"}});
  EXPECT_EQ(second["code"], "limit_reached");
  WsClient b(d.port());
  ASSERT_TRUE(b.next());
  WsClient third(d.port());
  auto r = third.next();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["code"], "limit_reached");
}

// --max-connections 0 (the default) is sized from the descriptor limit the daemon inherits
// (it raises its soft limit to the hard one): the limit less 64 and 5 per possible live agent,
// at least min(1024, limit / 2). The limit is set by a shell that then runs the daemon, so
// this test process keeps its own (without CAP_SYS_RESOURCE it could not raise it back).
TEST(Limits, DefaultMaxConnectionsIsSizedFromTheDescriptorLimit) {
  rlimit own{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &own), 0);
  if (own.rlim_max < 4096) GTEST_SKIP() << "needs a hard descriptor limit of at least 4096";
  TempDir dir;
  auto cap_with = [&](int hard, std::vector<std::string> args) -> json {
    std::string wrapper = dir.path() + "/pi-server-" + std::to_string(hard);
    std::ofstream(wrapper) << "#!/bin/sh\nulimit -S -n 1024 && ulimit -H -n " << hard << " && exec '"
                           << daemon_binary() << "' \"$@\"\n";
    std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
    Daemon::Options options;
    options.args = args;
    options.binary = wrapper;
    Daemon d(std::move(options));
    WsClient c(d.port());
    auto hello = c.next();
    if (!hello) return json();
    bool sized = std::find(args.begin(), args.end(), "--max-connections") == args.end();
    std::size_t logged = 0;
    for (const auto& line : d.logs())
      if (line.value("msg", "") == "max_connections_sized") {
        ++logged;
        EXPECT_EQ(line["maxConnections"], (*hello)["data"]["limits"]["maxConnections"]);
        EXPECT_EQ(line["descriptorLimit"], hard);
      }
    EXPECT_EQ(logged, sized ? 1u : 0u) << "max_connections_sized is logged when the cap is sized";
    return (*hello)["data"]["limits"]["maxConnections"];
  };
  EXPECT_EQ(cap_with(4096, {"--max-sessions", "10"}), 4096 - 64 - 5 * 10);
  EXPECT_EQ(cap_with(4096, {"--max-sessions", "100", "--max-live-agents", "2"}), 4096 - 64 - 5 * 2)
      << "only live agents hold descriptors";
  EXPECT_EQ(cap_with(1500, {}), 750) << "256 sessions would leave 156: the floor is limit / 2";
  EXPECT_EQ(cap_with(4096, {"--max-connections", "7"}), 7) << "an explicit cap is kept";
}

TEST(Limits, MetricsEndpointIsValidPrometheusText) {
  // No warm pool: exactly one agent spawn to count.
  Daemon d({.args = {"--warm-agents", "0"}});
  WsClient c(d.port());
  open_session(c, "m");
  run_prompt(c, "m", "stream 3", "p");
  c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "nope"}});
  auto metrics = http_get(d.port(), "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_EQ(metrics.content_type.rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_EQ(validate_prometheus(metrics.body), "") << metrics.body;
  for (const char* name : {"pi_server_sessions 1", "pi_server_commands_total{command=\"prompt\",outcome=\"success\"} 1",
                           "pi_server_errors_total{code=\"session_not_found\"} 1",
                           "pi_server_command_duration_seconds_count", "pi_server_events_relayed_total",
                           "pi_server_circuit_state{provider=\"pi-server-demo\"} 0",
                           "pi_server_loop_stall_seconds_count", "pi_server_agent_spawn_seconds_count 1"})
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  auto json_metrics = c.request({{"type", "get_metrics"}, {"id", "gm"}});
  EXPECT_EQ(json_metrics["data"]["sessionCount"], 1);
  EXPECT_EQ(json_metrics["data"]["commandsByOutcome"]["prompt"]["success"], 1);
  EXPECT_EQ(json_metrics["data"]["agentSpawn"]["count"], 1);
  EXPECT_TRUE(json_metrics["data"]["loopStallMaxMs"].is_number());
}

TEST(Limits, BrowserOriginsAreRefusedUnlessAllowed) {
  Daemon d({.args = {"--allow-origin", "https://ok.example"}});
  EXPECT_THROW(WsClient(d.port(), ClientOptions{.headers = {{"Origin", "https://evil.example"}}}), std::exception);
  WsClient allowed(d.port(), ClientOptions{.headers = {{"Origin", "https://ok.example"}}});
  EXPECT_TRUE(allowed.next());
  WsClient no_origin(d.port());
  EXPECT_TRUE(no_origin.next());
}

TEST(Limits, SighupDoesNotStopTheDaemon) {
  Daemon d;
  ::kill(d.pid(), SIGHUP);
  EXPECT_TRUE(d.wait_log("reload", std::chrono::seconds(5)));
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
}

TEST(Limits, ReadyzIs503WhileDraining) {
  Daemon d({.args = {"--drain-timeout-ms", "3000"}});
  WsClient c(d.port());
  open_session(c, "busy");
  // A stopped agent delays the drain (it cannot react to EOF until SIGTERM after 1.5 s).
  auto state = c.request({{"type", "get_state"}, {"id", "g"}, {"sessionId", "busy"}});
  pid_t agent = state["data"]["pid"];
  ::kill(agent, SIGSTOP);
  ::kill(d.pid(), SIGTERM);
  ASSERT_TRUE(d.wait_log("shutdown_started", std::chrono::seconds(5)));
  EXPECT_EQ(http_get(d.port(), "/readyz").status, 503u);
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
  // New commands on an open connection are refused while draining.
  auto refused = c.request({{"type", "list_sessions"}, {"id", "late"}});
  EXPECT_EQ(refused["code"], "shutting_down");
  // And a new connection is not served.
  WsClient late(d.port());
  auto frame = late.next(std::chrono::seconds(3));
  EXPECT_FALSE(frame.has_value() && (*frame)["type"] == "server_ready");
  ::kill(agent, SIGCONT);
  EXPECT_EQ(d.wait_exit(std::chrono::seconds(15)), 0);
}

namespace {
// The daemon's resident set, in MiB (/proc/<pid>/status VmRSS).
double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}
}  // namespace

// Found by an attacker: 300 list_sessions with 1 MiB ids grew the daemon to 1.27 GB, for
// good (each id was kept twice in the outcome store). Ids are now bounded, and outcomes are
// bounded by bytes too.
TEST(Limits, HugeIdsAreRefusedAndPinNoMemory) {
  Daemon d({.args = {"--rate-limit", "100000", "--rate-burst", "100000", "--max-outcome-bytes", "1048576",
                     "--rate-limit-bytes", "1000000000", "--rate-burst-bytes", "1000000000"}});
  WsClient c(d.port());
  ASSERT_TRUE(c.next());
  double before = rss_mib(d.pid());
  std::string big(1 << 20, 'i');
  for (int i = 0; i < 100; ++i) {
    big[0] = static_cast<char>('a' + i % 26);
    big[1] = static_cast<char>('a' + i / 26);
    c.send({{"type", "list_sessions"}, {"id", big}});
    auto r = c.next(std::chrono::seconds(10));
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)["code"], "invalid_command");
    EXPECT_FALSE(r->contains("id"));
  }
  // Big answers that are stored stay within --max-outcome-bytes.
  for (int i = 0; i < 40; ++i) c.request({{"type", "get_metrics"}, {"id", "m" + std::to_string(i)}});
  auto m = c.request({{"type", "get_metrics"}, {"id", "last"}});
  EXPECT_LE(m["data"]["outcomesBytes"].get<std::int64_t>(), 1 << 20);
  double after = rss_mib(d.pid());
  std::cout << "daemon RSS before " << before << " MiB, after " << after << " MiB\n";
  if (kRssIsMeaningful) {
    EXPECT_LT(after - before, 64) << "100 MiB of ids went through; none may stay";
  }
}

// Found by an attacker: three 15.5 MB messages on one connection delayed every other client
// for seconds. Inbound bytes now have a per-connection budget checked before parsing.
TEST(Limits, InboundByteRateIsLimitedPerConnectionBeforeParsing) {
  Daemon d({.args = {"--max-frame-bytes", "2000000", "--rate-limit-bytes", "10000",
                     "--rate-burst-bytes", "2500000"}});
  WsClient a(d.port());
  WsClient b(d.port());
  ASSERT_TRUE(a.next());
  ASSERT_TRUE(b.next());
  std::string pad(1500000, 'x');
  auto first = a.request({{"type", "list_sessions"}, {"id", "big1"}, {"pad", pad}});
  EXPECT_EQ(first["success"], true) << "fits the burst";
  auto second = a.request({{"type", "list_sessions"}, {"id", "big2"}, {"pad", pad}});
  EXPECT_EQ(second["success"], false);
  EXPECT_EQ(second["code"], "rate_limited");
  EXPECT_EQ(second["id"], "big2") << "echoed without parsing";
  EXPECT_GT(second["data"]["retryAfterMs"].get<std::int64_t>(), 0);
  auto other = b.request({{"type", "list_sessions"}, {"id", "small"}, {"pad", pad}});
  EXPECT_EQ(other["success"], true) << "another connection has its own budget";
  auto small = a.request({{"type", "list_sessions"}, {"id", "tiny"}});
  EXPECT_EQ(small["success"], true) << "small commands still fit";
}

// Found by an attacker: --max-connections counted upgraded WebSockets only, so 200 sockets
// that never finished their upgrade held 212 descriptors against --max-connections 50.
// Every accepted socket counts now; at the cap the oldest one still in its handshake (or
// plain HTTP) phase is closed to admit the new one.
TEST(Limits, SocketsThatNeverFinishAHandshakeCountAgainstMaxConnections) {
  Daemon d({.args = {"--max-connections", "5"}});
  const int baseline = open_socket_count(d.pid());  // listeners
  std::vector<RawSocket> idle;
  for (int i = 0; i < 20; ++i) {
    idle.emplace_back(d.port(), std::chrono::seconds(3));
    ASSERT_TRUE(idle.back().connected());
  }
  // Plain HTTP keep-alive connections count too.
  std::vector<RawSocket> keep_alive;
  for (int i = 0; i < 5; ++i) {
    keep_alive.emplace_back(d.port(), std::chrono::seconds(3));
    ASSERT_TRUE(keep_alive.back().send_all("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    std::string in;
    ASSERT_EQ(keep_alive.back().read_until(in, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }),
              RawSocket::ReadEnd::data);
    EXPECT_EQ(in.rfind("HTTP/1.1 200", 0), 0u);
  }
  // A real client is still served, and so is /healthz.
  WsClient c(d.port());
  auto ready = c.next();
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["type"], "server_ready");
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
  // The oldest idle sockets were closed by the daemon.
  EXPECT_TRUE(idle.front().closed_by_peer());
  // At most --max-connections sockets (plus one refused one being answered) besides the
  // listeners.
  int sockets = open_socket_count(d.pid());
  for (int i = 0; i < 40 && sockets > baseline + 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    sockets = open_socket_count(d.pid());
  }
  EXPECT_LE(sockets, baseline + 6) << "baseline " << baseline;
  // The listener's counts are in /metrics and get_metrics.
  auto metrics = http_get(d.port(), "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_GE(prometheus_value(metrics.body, "pi_server_sockets_evicted_total"), 20.0);
  EXPECT_GE(prometheus_value(metrics.body, "pi_server_sockets_accepted_total"), 27.0);
  EXPECT_LE(prometheus_value(metrics.body, "pi_server_sockets_open"), 7.0);
  auto m = c.request({{"type", "get_metrics"}, {"id", "m"}});
  EXPECT_GE(m["data"]["listener"]["evictedTotal"].get<std::int64_t>(), 20);
  EXPECT_EQ(m["data"]["listener"]["shedTotal"].get<std::int64_t>(), 0);
}

// The connection cap sized from the descriptor limit may be tens of thousands; sockets that
// have not upgraded (unauthenticated, each may hold a request buffer) stay bounded at 1024:
// past it the oldest of them is closed, and a WebSocket client is still served.
TEST(Limits, SocketsBeforeTheirUpgradeStayBoundedUnderALargeConnectionCap) {
  rlimit own{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &own), 0);
  if (own.rlim_cur < 2048) GTEST_SKIP() << "needs a descriptor limit of at least 2048";
  Daemon d({.args = {"--max-connections", "5000"}});
  std::vector<RawSocket> idle;
  idle.reserve(1100);
  for (int i = 0; i < 1100; ++i) {
    idle.emplace_back(d.port(), std::chrono::seconds(3));
    ASSERT_TRUE(idle.back().connected()) << i;
  }
  WsClient c(d.port());
  auto ready = c.next();
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["type"], "server_ready");
  EXPECT_EQ((*ready)["data"]["limits"]["maxConnections"], 5000);
  EXPECT_TRUE(idle.front().closed_by_peer()) << "the oldest socket that sent nothing made room";
  auto m = c.request({{"type", "get_metrics"}, {"id", "m"}});
  const auto& listener = m["data"]["listener"];
  EXPECT_GE(listener["evictedTotal"].get<std::int64_t>(), 1100 - 1024);
  // 1024 sockets before their upgrade at most, plus this client (and the one being accepted).
  EXPECT_LE(listener["openSockets"].get<std::int64_t>(), 1024 + 2);
}

// Raising the soft descriptor limit to the hard one at start, and saying so.
TEST(Limits, TheSoftDescriptorLimitIsRaisedToTheHardOneAtStart) {
  rlimit mine{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &mine), 0);
  rlimit lowered = mine;
  lowered.rlim_cur = std::min<rlim_t>(mine.rlim_max, 256);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);  // inherited by the daemon
  Daemon d;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &mine), 0);
  auto line = d.wait_log("fd_limit", std::chrono::seconds(2));
  ASSERT_TRUE(line);
  EXPECT_EQ((*line)["softBefore"], lowered.rlim_cur);
  rlimit now{};
  ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, nullptr, &now), 0);
  EXPECT_EQ(now.rlim_cur, now.rlim_max);
  EXPECT_EQ((*line)["soft"], now.rlim_cur);
  EXPECT_EQ((*line)["hard"], now.rlim_max);
}

namespace {
// Lowers the daemon's descriptor limit (soft and hard) to `headroom` above what it has open.
void leave_descriptors(pid_t pid, int headroom) {
  rlimit lim{};
  lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(open_fd_count(pid) + headroom);
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &lim, nullptr), 0);
}
}  // namespace

// Found by an attacker: under a low descriptor limit idle sockets used up every descriptor,
// the daemon logged accept_failed (EMFILE) every 100 ms and /healthz stopped answering.
// Now the oldest socket still in its handshake makes room for the new one.
TEST(Limits, WhenDescriptorsRunOutTheOldestHandshakeMakesRoomAndHealthzAnswers) {
  if (kSanitized) GTEST_SKIP() << kNeedsDescriptorsForSanitizer;
  Daemon d({.args = {"--max-connections", "1000"}});
  leave_descriptors(d.pid(), 16);
  std::vector<RawSocket> idle;
  for (int i = 0; i < 40; ++i) {
    idle.emplace_back(d.port(), std::chrono::seconds(3));
    ASSERT_TRUE(idle.back().connected());  // the kernel's backlog takes them all
  }
  // At once, not after the idle sockets' 30 s read timeout has freed descriptors.
  auto start = std::chrono::steady_clock::now();
  HttpResult health;
  EXPECT_NO_THROW(health = http_get(d.port(), "/healthz"));
  EXPECT_EQ(health.status, 200u);
  WsClient c(d.port());
  EXPECT_TRUE(c.next());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(idle.front().closed_by_peer());
}

// With every descriptor held by an admitted WebSocket there is nothing to close: a new
// socket is accepted on the reserve descriptor and closed at once (shed), instead of
// waiting in the backlog while the daemon retries accept every 100 ms.
TEST(Limits, WhenDescriptorsRunOutAndNothingCanBeClosedNewSocketsAreShed) {
  if (kSanitized) GTEST_SKIP() << kNeedsDescriptorsForSanitizer;
  Daemon d({.args = {"--max-connections", "1000"}});
  leave_descriptors(d.pid(), 4);
  std::vector<RawSocket> clients;
  RawSocket::ReadEnd end = RawSocket::ReadEnd::data;
  for (int i = 0; i < 10; ++i) {
    RawSocket s(d.port(), std::chrono::seconds(3));
    ASSERT_TRUE(s.connected());
    std::string in;
    if (!s.send_all("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n")) {
      end = RawSocket::ReadEnd::error;
      break;
    }
    end = s.read_until(in, [](const std::string& b) { return b.find("server_ready") != std::string::npos; });
    if (end != RawSocket::ReadEnd::data) break;
    clients.push_back(std::move(s));
  }
  EXPECT_GE(clients.size(), 1u);
  EXPECT_LT(clients.size(), 10u);
  EXPECT_TRUE(end == RawSocket::ReadEnd::eof || end == RawSocket::ReadEnd::error)
      << "the socket over the limit was left waiting instead of being closed";
  EXPECT_TRUE(d.wait_log("accept_shed", std::chrono::seconds(2)));
  // One client leaves: its descriptor serves the next request.
  clients.pop_back();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  HttpResult health;
  EXPECT_NO_THROW(health = http_get(d.port(), "/healthz"));
  EXPECT_EQ(health.status, 200u);
}
