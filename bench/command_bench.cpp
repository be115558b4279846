// Command benchmark: what the outcome journal costs per command (DESIGN §11 "Persistence").
//
//   build/release/bench/command-bench [--clients K] [--window W] [--seconds S] [--events N]
//                                     [--rounds R]
//
// Rounds alternate between the configurations, so machine noise hits all of them alike.
// For each configuration (--no-journal; journal with --db-sync normal; journal with
// --db-sync full, the default) a fresh daemon with the fake agent serves K clients, each on
// its own session, each keeping W commands in flight (set_session_name: relayed to the agent,
// journaled, bumps the version) for S seconds. Reported: commands/s and the median and p99
// time from send to response. Then one prompt streaming N events to one subscriber measures
// the relay's events/s in the same configuration (events are never journaled).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "daemon.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  const char* label;
  std::vector<std::string> args;
};

struct Result {
  double commands_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double events_per_second = 0;
};

Result measure(const Config& config, int clients, int window, double seconds, int events) {
  Daemon::Options options;
  options.args = {"--rate-limit", "1000000", "--rate-burst", "1000000"};
  options.args.insert(options.args.end(), config.args.begin(), config.args.end());
  Daemon daemon(options);
  std::atomic<bool> go{false}, stop{false};
  std::atomic<std::uint64_t> done{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int k = 0; k < clients; ++k) {
    threads.emplace_back([&, k] {
      WsClient c(daemon.port());
      c.next();
      std::string session = "bench-" + std::to_string(k);
      c.request({{"type", "create_session"}, {"id", "create"}, {"sessionId", session}},
                std::chrono::seconds(30));
      c.request({{"type", "set_lifecycle_events"}, {"id", "quiet"}, {"enabled", false}});
      ++ready;
      while (!go) std::this_thread::yield();
      std::vector<Clock::time_point> sent;
      std::uint64_t n = 0;
      auto send = [&] {
        c.send({{"type", "set_session_name"}, {"id", "c" + std::to_string(n)}, {"sessionId", session},
                {"name", "n" + std::to_string(n)}});
        sent.push_back(Clock::now());
        ++n;
      };
      for (int i = 0; i < window; ++i) send();
      while (!stop) {
        auto r = c.next(std::chrono::seconds(10));
        if (!r) break;
        if ((*r).value("type", "") != "response") continue;
        std::size_t idx = std::stoull((*r)["id"].get<std::string>().substr(1));
        latencies[static_cast<std::size_t>(k)].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - sent[idx]).count());
        ++done;
        send();
      }
    });
  }
  while (ready < clients) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto start = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  std::uint64_t counted = done;
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& t : threads) t.join();
  Result r;
  r.commands_per_second = counted / elapsed;
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }

  // The relay in the same configuration: one prompt, N events, one subscriber.
  WsClient c(daemon.port());
  c.next();
  c.request({{"type", "create_session"}, {"id", "relay-create"}, {"sessionId", "relay"}},
            std::chrono::seconds(30));
  auto t0 = Clock::now();
  c.send({{"type", "prompt"}, {"id", "relay-prompt"}, {"sessionId", "relay"},
          {"message", "stream " + std::to_string(events)}});
  std::uint64_t seen = 0;
  for (;;) {
    auto raw = c.next_raw(std::chrono::seconds(60));
    if (!raw) break;
    if (raw->find("\"type\":\"event\"") != std::string::npos) ++seen;
    if (raw->find("\"agent_settled\"") != std::string::npos) break;
  }
  r.events_per_second = seen / std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 8, window = 8, events = 200000, rounds = 1;
  double seconds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--clients") clients = std::stoi(argv[i + 1]);
    if (flag == "--window") window = std::stoi(argv[i + 1]);
    if (flag == "--seconds") seconds = std::stod(argv[i + 1]);
    if (flag == "--events") events = std::stoi(argv[i + 1]);
    if (flag == "--rounds") rounds = std::stoi(argv[i + 1]);
  }
  const Config configs[] = {
      {"no journal (--no-journal)", {"--no-journal"}},
      {"journal, --db-sync normal", {"--db-sync", "normal"}},
      {"journal, --db-sync full (default)", {}},
  };
  std::printf("clients %d, window %d, %.1f s per configuration, relay %d events\n", clients, window,
              seconds, events);
  std::printf("%-6s %-36s %12s %9s %9s %12s\n", "round", "configuration", "commands/s", "p50 ms",
              "p99 ms", "events/s");
  for (int round = 1; round <= rounds; ++round) {
    for (const auto& config : configs) {
      auto r = measure(config, clients, window, seconds, events);
      std::printf("%-6d %-36s %12.0f %9.2f %9.2f %12.0f\n", round, config.label,
                  r.commands_per_second, r.p50_ms, r.p99_ms, r.events_per_second);
      std::fflush(stdout);
    }
  }
}
