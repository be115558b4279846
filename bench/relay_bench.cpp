// Relay benchmark: how fast the daemon moves agent events to WebSocket subscribers,
// compared, in the same run, with reading the same agent directly through a pipe.
//
//   build/release/bench/relay-bench [--events N] [--subscribers K] [--rounds R]
//                                   [--baseline-daemon OLD_PI_SERVER]
//                                   [--baseline-args "FLAGS"]
//
// --baseline-args runs the baseline as this build with extra flags (e.g. "--no-journal":
// the relay with and without the outcome journal, in one run).
//
// Each round: the fake agent streams N text deltas ("stream N"); we time from sending the
// prompt to the last subscriber seeing agent_settled. Reported: events/s and MB/s through
// the daemon, the same agent read directly (baseline), their ratio, and the daemon's peak
// RSS. Ratios, not absolute numbers, are what to compare across machines (docs/benchmarks.md).
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/spawner.hpp"
#include "daemon.hpp"
#include "ws_client.hpp"

using namespace pi_server;
using namespace pi_server::testing;
using Clock = std::chrono::steady_clock;

namespace {

struct Timing {
  double seconds = 0;
  std::uint64_t events = 0;
  std::uint64_t bytes = 0;
};

// The agent alone: write the prompt, read stdout until agent_settled.
Timing direct_baseline(std::uint64_t n) {
  agent::SpawnRequest req;
  req.argv = {fake_agent_binary(), "--mode", "rpc"};
  auto spawned = agent::spawn_process(req).value();
  std::string cmd = R"({"id":"b","type":"prompt","message":"stream )" + std::to_string(n) + "\"}\n";
  auto start = Clock::now();
  (void)!::write(spawned.stdin_fd, cmd.data(), cmd.size());
  Timing r;
  std::string tail;
  char buf[1 << 16];
  for (;;) {
    ssize_t got = ::read(spawned.stdout_fd, buf, sizeof buf);
    if (got <= 0) break;
    r.bytes += static_cast<std::uint64_t>(got);
    r.events += static_cast<std::uint64_t>(std::count(buf, buf + got, '\n'));
    tail.append(buf, static_cast<std::size_t>(got));
    if (tail.size() > 256) tail.erase(0, tail.size() - 256);
    if (tail.find("\"agent_settled\"") != std::string::npos) break;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(spawned.stdin_fd);
  ::close(spawned.stdout_fd);
  ::close(spawned.stderr_fd);
  ::close(spawned.pidfd);
  return r;
}

// CPU seconds (user + system) the process has used so far.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::uint64_t peak_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

Timing through_daemon(Daemon& d, std::vector<std::unique_ptr<WsClient>>& subs, std::uint64_t n,
                      int round) {
  std::atomic<std::uint64_t> events{0}, bytes{0};
  std::vector<std::thread> readers;
  std::atomic<int> ready{0};
  auto start = Clock::now();
  std::vector<Clock::time_point> done(subs.size());
  for (std::size_t i = 0; i < subs.size(); ++i) {
    readers.emplace_back([&, i] {
      ++ready;
      for (;;) {
        auto raw = subs[i]->next_raw(std::chrono::seconds(120));
        if (!raw) break;
        if (raw->rfind("{\"type\":\"event\"", 0) != 0) continue;
        if (i == 0) {
          ++events;
          bytes += raw->size();
        }
        if (raw->find("\"agent_settled\"") != std::string::npos) break;
      }
      subs[i]->raw_history().clear();
      done[i] = Clock::now();
    });
  }
  while (ready < static_cast<int>(subs.size())) std::this_thread::yield();
  // The prompt goes out on its own connection so the readers own theirs.
  WsClient control(d.port());
  control.next();
  start = Clock::now();
  control.request({{"type", "prompt"}, {"id", "bench-" + std::to_string(round)}, {"sessionId", "bench"},
                   {"message", "stream " + std::to_string(n)}},
                  std::chrono::seconds(120));
  for (auto& t : readers) t.join();
  Timing r;
  r.seconds = std::chrono::duration<double>(*std::max_element(done.begin(), done.end()) - start).count();
  r.events = events;
  r.bytes = bytes;
  return r;
}

// One daemon with its subscribers, ready to relay.
struct Target {
  std::unique_ptr<Daemon> daemon;
  std::vector<std::unique_ptr<WsClient>> subs;
};

Target start_target(const std::string& binary, int subscribers,
                    const std::vector<std::string>& extra_args = {}) {
  Target t;
  // High-water mark above one round's bytes: this measures relaying, not dropping.
  std::vector<std::string> args = {"--rate-limit", "1000000", "--rate-burst", "1000000",
                                   "--outbound-high-water-bytes", "2000000000",
                                   "--outbound-hard-cap-bytes", "4000000000"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  t.daemon = std::make_unique<Daemon>(
      Daemon::Options{.args = args, .env = {}, .binary = binary, .state_dir = {}});
  for (int i = 0; i < subscribers; ++i) {
    t.subs.push_back(std::make_unique<WsClient>(t.daemon->port()));
    t.subs.back()->next();
    if (i == 0) {
      t.subs[0]->request({{"type", "create_session"}, {"id", "create"}, {"sessionId", "bench"}});
      t.subs[0]->request({{"type", "set_lifecycle_events"}, {"id", "quiet"}, {"enabled", false}});
    } else {
      t.subs[i]->request(
          {{"type", "switch_session"}, {"id", "sub" + std::to_string(i)}, {"sessionId", "bench"}});
    }
  }
  return t;
}

void print_round(const char* label, int round, const Timing& base, const Timing& relay,
                 double cpu_used, double rss_mib) {
  double base_eps = base.events / base.seconds, relay_eps = relay.events / relay.seconds;
  std::printf("%-6s %-6d %12.0f %12.0f %7.2f %12.1f %12.1f %10llu %12.2f %8.1f\n", label, round,
              base_eps, relay_eps, relay_eps / base_eps, base.bytes / base.seconds / 1e6,
              relay.bytes / relay.seconds / 1e6, static_cast<unsigned long long>(relay.events),
              cpu_used / static_cast<double>(relay.events) * 1e6, rss_mib);
}

std::vector<std::string> split_args(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = 200000;
  int subscribers = 1;
  int rounds = 3;
  std::string baseline;  // --baseline-daemon: an older pi-server binary measured in the same run
  std::vector<std::string> baseline_args;  // --baseline-args: flags for the baseline daemon
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--events") n = std::stoull(argv[i + 1]);
    if (flag == "--subscribers") subscribers = std::stoi(argv[i + 1]);
    if (flag == "--rounds") rounds = std::stoi(argv[i + 1]);
    if (flag == "--baseline-daemon") baseline = argv[i + 1];
    if (flag == "--baseline-args") baseline_args = split_args(argv[i + 1]);
  }
  std::vector<std::pair<const char*, Target>> targets;
  bool compare = !baseline.empty() || !baseline_args.empty();
  if (compare) targets.emplace_back("before", start_target(baseline, subscribers, baseline_args));
  targets.emplace_back(compare ? "after" : "-", start_target("", subscribers));
  std::printf("events per round: %llu, subscribers: %d, rounds: %d\n",
              static_cast<unsigned long long>(n), subscribers, rounds);
  std::printf("%-6s %-6s %12s %12s %7s %12s %12s %10s %12s %8s\n", "daemon", "round", "direct ev/s",
              "daemon ev/s", "ratio", "direct MB/s", "daemon MB/s", "received", "daemon us/ev",
              "RSS MiB");
  // Rounds alternate between the daemons, each against a fresh direct baseline, so machine
  // noise hits both alike.
  for (int round = 1; round <= rounds; ++round) {
    for (auto& [label, t] : targets) {
      Timing base = direct_baseline(n);
      double cpu_before = cpu_seconds(t.daemon->pid());
      Timing relay = through_daemon(*t.daemon, t.subs, n, round);
      double cpu_used = cpu_seconds(t.daemon->pid()) - cpu_before;
      print_round(label, round, base, relay, cpu_used, peak_rss_kib(t.daemon->pid()) / 1024.0);
    }
  }
  return 0;
}
