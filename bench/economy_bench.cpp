// Session economy benchmark (docs/benchmarks.md, "Session economy"): what sessions cost in
// memory and latency with the real pinned pi against the daemon's offline demo model.
//
//   build/release/bench/economy-bench [--sessions N] [--active K] [--hibernate-ms MS]
//                                     [--node-options "FLAGS"] [--agents-only N]
//                                     [--create-latency N] [--warm-agents N]
//                                     [--idle-connections N] [--wake-gap-ms MS]
//
// Default run: N sessions (50) are created one after another (create_session latency, cold),
// each runs one prompt; memory of the daemon plus every agent is sampled (all live); then
// everybody idles past the hibernation time and memory is sampled again (all hibernated);
// then K sessions (5) are used again (wake-up latency = the first command's round trip,
// MS (2000) apart so the warm pool has refilled: a pooled wake-up; --wake-gap-ms 0 or
// --warm-agents 0 for cold ones) and memory is sampled with K live. --agents-only N: just start N sessions with the given Node
// options and report per-agent start time, RSS and PSS (no hibernation). --create-latency N:
// N rounds of create_session with a pool hit in the same cwd and in another cwd (2 s apart)
// and a pool miss (right after a hit). --hibernate-ms 0: stop after the first memory sample.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// kB from /proc/PID/status (VmRSS) or smaps_rollup (Pss).
long proc_kb(pid_t pid, const char* file, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size()));
  return 0;
}

pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// The daemon and every process below it.
std::vector<pid_t> tree(pid_t root) {
  std::map<pid_t, pid_t> parents;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      pid_t pid = std::atoi(e->d_name);
      if (pid > 0) parents[pid] = parent_of(pid);
    }
    ::closedir(d);
  }
  std::vector<pid_t> out{root};
  for (std::size_t i = 0; i < out.size(); ++i)
    for (const auto& [pid, ppid] : parents)
      if (ppid == out[i]) out.push_back(pid);
  return out;
}

struct Memory {
  double daemon_mb = 0, agents_rss_mb = 0, agents_pss_mb = 0;
  std::size_t agents = 0;
};

Memory sample(pid_t daemon) {
  Memory m;
  m.daemon_mb = proc_kb(daemon, "status", "VmRSS:") / 1024.0;
  for (pid_t pid : tree(daemon)) {
    if (pid == daemon) continue;
    ++m.agents;
    m.agents_rss_mb += proc_kb(pid, "status", "VmRSS:") / 1024.0;
    m.agents_pss_mb += proc_kb(pid, "smaps_rollup", "Pss:") / 1024.0;
  }
  return m;
}

void print_memory(const char* label, const Memory& m) {
  std::printf("%-34s daemon %6.1f MB  agents %3zu: RSS %7.1f MB, PSS %7.1f MB  total RSS %7.1f MB\n",
              label, m.daemon_mb, m.agents, m.agents_rss_mb, m.agents_pss_mb,
              m.daemon_mb + m.agents_rss_mb);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

void print_latency(const char* label, const std::vector<double>& ms) {
  std::printf("%-34s n=%zu p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", label, ms.size(),
              percentile(ms, 0.5), percentile(ms, 0.99), ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()));
}

double timed_ms(const std::function<void()>& f) {
  auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One idle WebSocket client on one descriptor, blocking: upgrade, then read the first frame,
// which must be server_ready. (The tests' WsClient has an io_context of its own: several
// descriptors each, so 10 000 of them do not fit under this machine's limit of 20 000.)
int open_idle_websocket(std::uint16_t port, std::string& why) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
    return -1;
  }
  auto fail = [&](std::string reason) {
    why = std::move(reason);
    ::close(fd);
    return -1;
  };
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return fail(std::string("connect: ") + std::strerror(errno));
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    return fail("send failed");
  std::string got;
  auto read_until = [&](auto done) {
    char chunk[4096];
    while (!done()) {
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      got.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
  };
  if (!read_until([&] { return got.find("\r\n\r\n") != std::string::npos; }))
    return fail("no upgrade response");
  if (got.rfind("HTTP/1.1 101", 0) != 0) return fail(got.substr(0, got.find('\r')));
  got.erase(0, got.find("\r\n\r\n") + 4);
  // A server frame is unmasked: 2 header bytes, then a 16- or 64-bit length if flagged.
  std::size_t header = 2, length = 0;
  if (!read_until([&] { return got.size() >= 2; })) return fail("no frame");
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(got[i]); };
  length = byte(1) & 0x7f;
  if (length == 126) header = 4;
  if (length == 127) header = 10;
  if (!read_until([&] { return got.size() >= header; })) return fail("short frame header");
  if (header > 2) {
    length = 0;
    for (std::size_t i = 2; i < header; ++i) length = (length << 8) | byte(i);
  }
  if (!read_until([&] { return got.size() >= header + length; })) return fail("short frame");
  if (got.find("\"server_ready\"", header) == std::string::npos)
    return fail("first frame is not server_ready");
  return fd;
}
}  // namespace

int main(int argc, char** argv) {
  int sessions = 50, active = 5, hibernate_ms = 5000, agents_only = 0, create_latency = 0,
      idle_connections = 0, wake_gap_ms = 2000;
  std::string warm_agents = "1";
  std::string node_options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--sessions") sessions = std::atoi(argv[i + 1]);
    else if (a == "--active") active = std::atoi(argv[i + 1]);
    else if (a == "--hibernate-ms") hibernate_ms = std::atoi(argv[i + 1]);
    else if (a == "--node-options") node_options = argv[i + 1];
    else if (a == "--agents-only") agents_only = std::atoi(argv[i + 1]);
    else if (a == "--create-latency") create_latency = std::atoi(argv[i + 1]);
    else if (a == "--warm-agents") warm_agents = argv[i + 1];
    else if (a == "--idle-connections") idle_connections = std::atoi(argv[i + 1]);
    else if (a == "--wake-gap-ms") wake_gap_ms = std::atoi(argv[i + 1]);
  }
  std::vector<std::string> args = {"--max-sessions", "1000", "--max-connections", "20000", "--rate-limit", "10000", "--rate-burst", "10000",
                                   "--hibernate-after-ms",
                                   std::to_string(agents_only ? 0 : hibernate_ms)};
  args.insert(args.end(), {"--warm-agents", warm_agents});
  if (!node_options.empty()) args.insert(args.end(), {"--agent-node-options", node_options});
  // Sessions work where the benchmark runs (the default cwd) or in `other` (another cwd).
  TempDir other;
  args.insert(args.end(), {"--workspace-root", std::filesystem::current_path().string(),
                           "--workspace-root", other.path()});
  Daemon::Options options;
  options.args = args;
  options.use_fake_agent = false;
  Daemon d(std::move(options));
  WsClient c(d.port());
  c.next();  // server_ready
  std::printf("node options: '%s'\n", node_options.c_str());

  if (idle_connections > 0) {
    // N idle WebSocket connections, each waits for server_ready; the daemon's RSS before/after.
    rlimit fds{};
    ::getrlimit(RLIMIT_NOFILE, &fds);
    fds.rlim_cur = fds.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &fds);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    double before = proc_kb(d.pid(), "status", "VmRSS:") / 1024.0;
    std::vector<int> idle;
    std::size_t ready = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < idle_connections; ++i) {
      std::string why;
      int fd = open_idle_websocket(d.port(), why);
      if (fd < 0) {
        std::fprintf(stderr, "connection %d failed: %s\n", i, why.c_str());
        break;
      }
      idle.push_back(fd);
      ++ready;
    }
    double open_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    double after = proc_kb(d.pid(), "status", "VmRSS:") / 1024.0;
    auto m = c.request({{"type", "get_metrics"}, {"id", "conns"}});
    std::printf("idle connections: %zu of %d got server_ready in %.1f s; daemon says %s open\n", ready,
                idle_connections, open_s, m["data"]["connectionCount"].dump().c_str());
    std::printf("daemon RSS: %.1f MB before, %.1f MB after: %.1f MB total, %.2f KB per connection\n",
                before, after, after - before, (after - before) * 1024.0 / std::max<std::size_t>(ready, 1));
    for (int fd : idle) ::close(fd);
    return 0;
  }

  if (create_latency > 0) {
    // Pool hits, 2 s apart (the pool has refilled): same cwd, then another cwd; then pool
    // misses: a create right after a hit finds the pool still refilling.
    std::vector<double> same_ms, other_ms, miss_ms;
    auto create = [&](const std::string& id, const std::string& cwd) {
      return timed_ms([&] {
        json cmd = {{"type", "create_session"}, {"id", "c" + id}, {"sessionId", id}};
        if (!cwd.empty()) cmd["cwd"] = cwd;
        auto r = c.request(cmd, std::chrono::seconds(60));
        if (r["success"] != true) std::fprintf(stderr, "create failed: %s\n", r.dump().c_str());
      });
    };
    for (int i = 0; i < create_latency; ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      same_ms.push_back(create("h" + std::to_string(i), ""));
      std::this_thread::sleep_for(std::chrono::seconds(2));
      other_ms.push_back(create("o" + std::to_string(i), other.path()));
      miss_ms.push_back(create("m" + std::to_string(i), ""));
      for (const char* p : {"h", "o", "m"})
        c.request({{"type", "delete_session"}, {"id", std::string("d") + p + std::to_string(i)},
                   {"sessionId", p + std::to_string(i)}}, std::chrono::seconds(30));
    }
    print_latency("create_session, pool hit, same cwd", same_ms);
    print_latency("create_session, pool hit, other cwd", other_ms);
    print_latency("create_session, pool miss", miss_ms);
    auto m = c.request({{"type", "get_metrics"}, {"id", "final"}});
    std::printf("metrics: warmPool %s\n", m["data"]["warmPool"].dump().c_str());
    return 0;
  }

  if (agents_only > 0) {
    std::vector<double> create_ms;
    for (int i = 0; i < agents_only; ++i) {
      std::string id = "a" + std::to_string(i);
      create_ms.push_back(timed_ms([&] {
        auto r = c.request({{"type", "create_session"}, {"id", "c" + id}, {"sessionId", id}},
                           std::chrono::seconds(60));
        if (r["success"] != true) std::fprintf(stderr, "create failed: %s\n", r.dump().c_str());
      }));
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    Memory idle = sample(d.pid());
    print_latency("create_session (spawn to ready)", create_ms);
    std::printf("per agent idle: RSS %.1f MB, PSS %.1f MB\n", idle.agents_rss_mb / idle.agents,
                idle.agents_pss_mb / idle.agents);
    for (int i = 0; i < agents_only; ++i)
      run_prompt(c, "a" + std::to_string(i), "stream 200", "p" + std::to_string(i), std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Memory used = sample(d.pid());
    std::printf("per agent after one prompt: RSS %.1f MB, PSS %.1f MB\n", used.agents_rss_mb / used.agents,
                used.agents_pss_mb / used.agents);
    return 0;
  }

  std::vector<double> create_ms;
  for (int i = 0; i < sessions; ++i) {
    std::string id = "s" + std::to_string(i);
    create_ms.push_back(timed_ms([&] {
      auto r = c.request({{"type", "create_session"}, {"id", "c" + id}, {"sessionId", id}},
                         std::chrono::seconds(60));
      if (r["success"] != true) std::fprintf(stderr, "create failed: %s\n", r.dump().c_str());
    }));
    run_prompt(c, id, "stream 20", "p" + id, std::chrono::seconds(60));
  }
  print_latency("create_session, back to back", create_ms);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  print_memory("each ran once, before hibernation", sample(d.pid()));
  if (hibernate_ms == 0) return 0;

  // Everybody idles past the hibernation time.
  auto deadline = Clock::now() + std::chrono::milliseconds(hibernate_ms) + std::chrono::seconds(60);
  for (;;) {
    auto m = c.request({{"type", "get_metrics"}, {"id", "m" + std::to_string(Clock::now().time_since_epoch().count())}});
    // The warm pool's agents stay up: they belong to no session.
    if (m["data"]["sessionsHibernated"] == sessions &&
        sample(d.pid()).agents <= static_cast<std::size_t>(std::atoi(warm_agents.c_str())))
      break;
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "not all hibernated: %s\n", m["data"]["sessionsHibernated"].dump().c_str());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  print_memory("all hibernated", sample(d.pid()));

  std::vector<double> wake_ms;
  for (int i = 0; i < active; ++i) {
    std::string id = "s" + std::to_string(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(wake_gap_ms));
    wake_ms.push_back(timed_ms([&] {
      auto r = c.request({{"type", "get_messages"}, {"id", "w" + id}, {"sessionId", id}}, std::chrono::seconds(60));
      if (r["success"] != true) std::fprintf(stderr, "wake failed: %s\n", r.dump().c_str());
    }));
    run_prompt(c, id, "stream 20", "q" + id, std::chrono::seconds(60));
  }
  print_latency("wake-up (get_messages round trip)", wake_ms);
  print_memory("active sessions live, rest asleep", sample(d.pid()));
  auto m = c.request({{"type", "get_metrics"}, {"id", "final"}});
  std::printf("metrics: hibernation %s\n", m["data"]["hibernation"].dump().c_str());
  return 0;
}
