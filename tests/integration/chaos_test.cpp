// Chaos: 20 sessions, 5 clients, 1000 commands in flight while agents are SIGKILLed or
// SIGSTOPped and clients drop their connections. Afterwards: exactly one response per
// command on every connection that stayed open, no agent process left (zombie or not), the
// daemon's fds back to the baseline, its RSS near it, and the daemon healthy.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <latch>
#include <mutex>
#include <set>
#include <thread>

#include "daemon.hpp"
#include "sanitizers.hpp"
#include "session_helpers.hpp"
#include "traffic.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int kSessions = 20;
constexpr int kClients = 5;
constexpr int kCommandsPerClient = 200;  // 1000 in all (plus 3 switch_session per connection)
constexpr int kMaxKillsPerSession = 3;   // restart backoff 0.5 s, 1 s, 2 s: restarts keep coming
constexpr std::uint64_t kRssSlackKib = 30 * 1024;

struct ChaosCounts {
  int sigkills = 0;
  int sigstops = 0;
  int list_requests = 0;
  std::set<pid_t> pids_seen;
  std::string error;
};

// Every 50-200 ms: list_sessions, pick a session's agent, then SIGKILL it (at most
// kMaxKillsPerSession per session) or SIGSTOP it for 50-300 ms and SIGCONT it.
void run_chaos(std::uint16_t port, pid_t daemon, std::uint64_t seed, const std::atomic<bool>& stop,
               ChaosCounts& counts) try {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  WsClient ctl(port);
  ctl.next();  // server_ready
  std::map<std::string, int> kills;
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(50, 200)));
    auto list = ctl.request({{"type", "list_sessions"}, {"id", "chaos-l" + std::to_string(counts.list_requests++)}},
                            20s);
    const auto& sessions = list["data"]["sessions"];
    if (sessions.empty()) continue;
    const auto& s = sessions[static_cast<std::size_t>(uniform(0, static_cast<int>(sessions.size()) - 1))];
    if (!s.contains("pid")) continue;
    pid_t pid = s["pid"].get<pid_t>();
    counts.pids_seen.insert(pid);
    if (!is_live_agent_of(pid, daemon)) continue;  // exited meanwhile
    std::string sid = s["sessionId"];
    if (uniform(0, 99) < 60 && kills[sid] < kMaxKillsPerSession) {
      ::kill(pid, SIGKILL);
      ++kills[sid];
      ++counts.sigkills;
    } else {
      ::kill(pid, SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(uniform(50, 300)));
      ::kill(pid, SIGCONT);
      ++counts.sigstops;
    }
  }
  ctl.close();
} catch (const std::exception& e) {
  counts.error = e.what();
}

}  // namespace

TEST(Chaos, KilledAgentsAndDroppedClientsLoseNoResponseAndLeakNothing) {
  const std::uint64_t seed = chaos_seed(20261201);
  std::printf("chaos seed %llu (set PI_SERVER_CHAOS_SEED to repeat or vary)\n",
              static_cast<unsigned long long>(seed));
  const auto started = std::chrono::steady_clock::now();
  // Limits raised so that the chaos, not the limits, decides: no rate limiting, restarts
  // keep happening, lanes hold every command; timeouts short enough for the time budget.
  Daemon d({.args = {"--rate-limit", "100000", "--rate-burst", "100000", "--agent-max-restarts", "1000",
                     "--max-pending-per-lane", "1000", "--read-timeout-ms", "10000", "--command-timeout-ms",
                     "10000", "--long-command-timeout-ms", "15000", "--dependency-wait-ms", "5000"}});

  // Warm up once so lazily opened descriptors and allocator arenas are counted in the baseline.
  {
    WsClient warm(d.port());
    ASSERT_TRUE(warm.next());
    ASSERT_EQ(warm.request({{"type", "create_session"}, {"id", "w"}, {"sessionId", "warm"}}, 30s)["success"], true);
    run_prompt(warm, "warm", "stream 3", "wp");
    ASSERT_EQ(warm.request({{"type", "delete_session"}, {"id", "wd"}, {"sessionId", "warm"}}, 30s)["success"], true);
    warm.close();
  }
  std::size_t fds_baseline = 0;
  for (int i = 0; i < 50; ++i) {  // the closed connection's socket goes away asynchronously
    std::this_thread::sleep_for(20ms);
    std::size_t n = proc_open_fds(d.pid());
    if (n == fds_baseline) break;
    fds_baseline = n;
  }
  const std::uint64_t rss_baseline = proc_rss_kib(d.pid());

  std::vector<std::string> sessions;
  {
    WsClient setup(d.port());
    ASSERT_TRUE(setup.next());
    for (int i = 0; i < kSessions; ++i) {
      sessions.push_back("s" + std::to_string(i));
      auto r = setup.request({{"type", "create_session"}, {"id", "c" + sessions.back()}, {"sessionId", sessions.back()}},
                             30s);
      ASSERT_EQ(r["success"], true) << r.dump();
    }
    setup.close();
  }

  std::atomic<bool> stop_chaos{false};
  std::latch sent_all(kClients);
  std::latch chaos_over(1);
  ChaosCounts chaos;
  std::thread chaos_thread([&] { run_chaos(d.port(), d.pid(), seed + 1000, stop_chaos, chaos); });

  std::vector<std::unique_ptr<TrafficClient>> clients;
  for (int i = 0; i < kClients; ++i)
    clients.push_back(std::make_unique<TrafficClient>(d.port(), "k" + std::to_string(i), seed + i, sessions));
  std::vector<std::string> thread_errors(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      auto& c = *clients[i];
      bool counted = false;
      try {
        int sent = 0;
        while (sent < kCommandsPerClient) {
          int burst = std::min<int>(static_cast<int>(c.uniform(1, 8)), kCommandsPerClient - sent);
          for (int k = 0; k < burst; ++k) c.send_random();
          sent += burst;
          // A disconnect right after a burst: its commands are still in flight.
          if (sent < kCommandsPerClient && c.uniform(0, 99) < 5) c.reconnect(c.uniform(0, 1) == 0);
          c.pump(std::chrono::milliseconds(c.uniform(50, 250)));
        }
        sent_all.count_down();
        counted = true;
        chaos_over.wait();
        c.drain(std::chrono::steady_clock::now() + 30s);
        c.check_connection();
      } catch (const std::exception& e) {
        thread_errors[i] = e.what();
        if (!counted) sent_all.count_down();
      }
    });
  sent_all.wait();
  stop_chaos = true;
  chaos_thread.join();
  chaos_over.count_down();
  for (auto& t : threads) t.join();
  const auto traffic_done = std::chrono::steady_clock::now();

  TrafficStats total;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(thread_errors[i].empty()) << "client k" << i << ": " << thread_errors[i];
    const auto& s = clients[i]->stats();
    total.sent += s.sent;
    total.checked_sent += s.checked_sent;
    total.responses += s.responses;
    total.lost_with_connection += s.lost_with_connection;
    total.duplicates += s.duplicates;
    total.with_depends_on += s.with_depends_on;
    total.reconnects += s.reconnects;
    total.subscriptions += s.subscriptions;
    total.replayed += s.replayed;
    total.events += s.events;
    for (const auto& [code, n] : s.codes) total.codes[code] += n;
    for (const auto& v : s.violations) ADD_FAILURE() << v;
  }
  std::printf("sent %llu commands + %llu switch_session (%llu duplicates, %llu with dependsOn), %llu responses (%llu replayed), "
              "%llu events; %llu reconnects lost %llu responses by design; %llu commands checked on "
              "connections that stayed open\n",
              (unsigned long long)(total.sent - total.subscriptions), (unsigned long long)total.subscriptions,
              (unsigned long long)total.duplicates,
              (unsigned long long)total.with_depends_on, (unsigned long long)total.responses,
              (unsigned long long)total.replayed, (unsigned long long)total.events,
              (unsigned long long)total.reconnects, (unsigned long long)total.lost_with_connection,
              (unsigned long long)total.checked_sent);
  std::printf("chaos: %d SIGKILL, %d SIGSTOP/SIGCONT, %zu agent pids seen\n", chaos.sigkills,
              chaos.sigstops, chaos.pids_seen.size());
  std::printf("outcomes:");
  for (const auto& [code, n] : total.codes) std::printf(" %s=%llu", code.c_str(), (unsigned long long)n);
  std::printf("\n");
  EXPECT_EQ(total.sent - total.subscriptions, static_cast<std::uint64_t>(kClients * kCommandsPerClient));
  EXPECT_TRUE(chaos.error.empty()) << "chaos thread: " << chaos.error;
  EXPECT_GT(chaos.sigkills, 0);
  EXPECT_GT(chaos.sigstops, 0);
  // Which connections stay open depends only on the seed (about a third to a half of the
  // commands end up on them); the check below must have something to check.
  EXPECT_GE(total.checked_sent, 100u);

  // Delete every session: each delete answers once its agent is reaped.
  {
    WsClient ctl(d.port());
    ASSERT_TRUE(ctl.next());
    auto list = ctl.request({{"type", "list_sessions"}, {"id", "final-list"}}, 20s);
    for (const auto& s : list["data"]["sessions"])
      if (s.contains("pid")) chaos.pids_seen.insert(s["pid"].get<pid_t>());
    for (const auto& id : sessions) {
      auto r = ctl.request({{"type", "delete_session"}, {"id", "del-" + id}, {"sessionId", id}}, 30s);
      EXPECT_EQ(r["success"], true) << r.dump();
    }
    EXPECT_TRUE(ctl.request({{"type", "list_sessions"}, {"id", "empty"}}, 20s)["data"]["sessions"].empty());
    ctl.close();
  }
  auto children = proc_children(d.pid());
  for (const auto& [pid, state] : children) {
    // The warm pool's agent (--warm-agents 1) waits for the next create_session: expected.
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string argv((std::istreambuf_iterator<char>(cmdline)), {});
    if (argv.find("/sessions/pool-") != std::string::npos) continue;
    ADD_FAILURE() << "daemon child left: " << pid << " " << state;
  }
  for (pid_t pid : chaos.pids_seen) EXPECT_FALSE(process_exists(pid)) << "agent " << pid << " left behind";

  for (auto& c : clients) c->close();
  clients.clear();
  std::size_t fds_after = 0;
  for (int i = 0; i < 250; ++i) {  // closes complete asynchronously
    fds_after = proc_open_fds(d.pid());
    if (fds_after == fds_baseline) break;
    std::this_thread::sleep_for(20ms);
  }
  const std::uint64_t rss_after = proc_rss_kib(d.pid());
  std::printf("daemon fds: baseline %zu, after %zu; RSS: baseline %llu KiB, after %llu KiB (%+lld KiB)\n",
              fds_baseline, fds_after, (unsigned long long)rss_baseline, (unsigned long long)rss_after,
              (long long)rss_after - (long long)rss_baseline);
  EXPECT_EQ(fds_after, fds_baseline);
  if (kRssIsMeaningful) {
    EXPECT_LE(rss_after, rss_baseline + kRssSlackKib);
  }

  // Still healthy.
  auto healthz = http_get(d.port(), "/healthz");
  EXPECT_EQ(healthz.status, 200u);
  WsClient probe(d.port());
  ASSERT_TRUE(probe.next());
  auto health = probe.request({{"type", "health_check"}, {"id", "h"}}, 20s);
  EXPECT_EQ(health["success"], true);
  EXPECT_EQ(health["data"]["status"], "ok") << health.dump();
  std::printf("traffic phase %.1f s, whole test %.1f s\n",
              std::chrono::duration<double>(traffic_done - started).count(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}
