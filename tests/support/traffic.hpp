#pragma once
// Mixed random traffic for the chaos test (tests/integration/chaos_test.cpp) and the soak
// test (tests/soak/soak_test.cpp): a client that sends commands in bursts and counts the
// responses per connection, and /proc readings of the daemon (fds, RSS, children).
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ws_client.hpp"

namespace pi_server::testing {

// ------------------------------------------------------------------ /proc readings

inline std::size_t proc_open_fds(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec))
    ++n;
  return n;
}

// A field of /proc/<pid>/status ("VmRSS", "PPid", "State"), or "" when absent.
inline std::string proc_status_field(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + ":", 0) == 0) {
      auto v = line.substr(name.size() + 1);
      auto first = v.find_first_not_of(" \t");
      return first == std::string::npos ? "" : v.substr(first);
    }
  return {};
}

// Resident set size in KiB (0 when the process is gone).
inline std::uint64_t proc_rss_kib(pid_t pid) {
  auto v = proc_status_field(pid, "VmRSS");
  return v.empty() ? 0 : std::stoull(v);
}

// Every process whose parent is `parent` (zombies included), with its State line.
inline std::vector<std::pair<pid_t, std::string>> proc_children(pid_t parent) {
  std::vector<std::pair<pid_t, std::string>> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    auto ppid = proc_status_field(pid, "PPid");
    if (!ppid.empty() && std::stol(ppid) == parent) out.emplace_back(pid, proc_status_field(pid, "State"));
  }
  return out;
}

// True if `pid` is a live (not zombie) fake agent whose parent is `parent`: the guard before
// signalling a pid read from list_sessions, which may be stale.
inline bool is_live_agent_of(pid_t pid, pid_t parent) {
  auto ppid = proc_status_field(pid, "PPid");
  if (ppid.empty() || std::stol(ppid) != parent) return false;
  return proc_status_field(pid, "State").rfind("Z", 0) != 0;
}

// Least-squares slope of y over x.
inline double least_squares_slope(const std::vector<double>& x, const std::vector<double>& y) {
  double n = static_cast<double>(x.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  double den = n * sxx - sx * sx;
  return den == 0 ? 0 : (n * sxy - sx * sy) / den;
}

// ------------------------------------------------------------------ traffic

struct TrafficStats {
  std::uint64_t sent = 0;              // commands written, on every connection
  std::uint64_t checked_sent = 0;      // sent on connections that stayed open until checked
  std::uint64_t responses = 0;         // responses read (all connections)
  std::uint64_t lost_with_connection = 0;  // unanswered when their connection was dropped
  std::uint64_t duplicates = 0;        // re-sends of an earlier command (same id and payload)
  std::uint64_t with_depends_on = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t subscriptions = 0;     // switch_session sent after each connect (in `sent`)
  std::uint64_t replayed = 0;          // responses with replayed:true
  std::uint64_t events = 0;            // event frames read
  std::uint64_t events_dropped_notices = 0;
  std::map<std::string, std::uint64_t> codes;  // response outcome: "ok" or its error code
  std::vector<std::string> violations;         // ids with a wrong number of responses
};

// One client: a WsClient that may be replaced (a disconnect), the commands it sent on the
// current connection and the responses it read there, counted by id.
class TrafficClient {
 public:
  TrafficClient(std::uint16_t port, std::string name, std::uint64_t seed,
                std::vector<std::string> sessions)
      : port_(port), name_(std::move(name)), rng_(seed), sessions_(std::move(sessions)) {
    connect();
  }

  // Sends one random command (see next_command()).
  void send_random() { send(next_command()); }

  // Reads frames for about `d` (returns early when the connection is closed).
  void pump(std::chrono::milliseconds d) {
    auto deadline = std::chrono::steady_clock::now() + d;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !client_) return;
      auto raw = client_->next_raw(left);
      if (!raw) {
        if (client_->close_code()) closed_by_server_ = true;
        return;
      }
      account(*raw);
    }
  }

  // Drops the connection (abruptly or with a close handshake) and opens a new one. What
  // was pending on the old connection is lost to this client by design.
  void reconnect(bool graceful) {
    if (graceful) client_->close();
    finish_connection(false);
    ++stats_.reconnects;
    connect();
  }

  // Commands on the current connection still without a response.
  std::size_t outstanding() const {
    std::size_t n = 0;
    for (const auto& [id, c] : counts_) if (c.received < c.sent) n += c.sent - c.received;
    return n;
  }

  // Reads until every command on this connection is answered or the deadline passes.
  bool drain(std::chrono::steady_clock::time_point deadline) {
    while (outstanding() > 0 && std::chrono::steady_clock::now() < deadline && !closed_by_server_)
      pump(std::chrono::milliseconds(200));
    return outstanding() == 0;
  }

  // Checks the current connection: exactly one response per command sent (by id; a
  // duplicate id sent twice must be answered twice). Call after drain().
  void check_connection() { finish_connection(true); }

  void close() {
    if (client_) client_->close();
    client_.reset();
  }

  WsClient* client() { return client_.get(); }
  const TrafficStats& stats() const { return stats_; }
  bool closed_by_server() const { return closed_by_server_; }
  std::mt19937_64& rng() { return rng_; }

  // Picks a command: prompts with short streams, get_state, bash, a duplicate of an earlier
  // command (same id and payload), a command with dependsOn on an earlier id, and a few
  // server commands.
  nlohmann::json next_command() {
    auto pick = uniform(0, 99);
    if (pick < 10 && !history_.empty()) {
      ++stats_.duplicates;
      return history_[uniform(0, history_.size() - 1)];
    }
    std::string id = name_ + "-" + std::to_string(next_id_++);
    const std::string& session = sessions_[uniform(0, sessions_.size() - 1)];
    nlohmann::json cmd;
    if (pick < 45) {
      cmd = {{"type", "prompt"}, {"message", "stream " + std::to_string(uniform(1, 5))}};
      if (uniform(0, 1)) cmd["streamingBehavior"] = "followUp";
    } else if (pick < 70) {
      cmd = {{"type", "get_state"}};
    } else if (pick < 85) {
      cmd = {{"type", "bash"}, {"command", "echo " + id}};
    } else if (pick < 95) {
      cmd = {{"type", uniform(0, 1) ? "get_state" : "get_messages"}};
      if (!history_.empty()) {
        // A recent command, often still running or queued.
        auto from = history_.size() > 20 ? history_.size() - 20 : 0;
        cmd["dependsOn"] = {history_[uniform(from, history_.size() - 1)]["id"]};
        ++stats_.with_depends_on;
      }
    } else {
      cmd = {{"type", uniform(0, 1) ? "list_sessions" : "health_check"}};
      cmd["id"] = id;
      history_.push_back(cmd);
      return cmd;
    }
    cmd["id"] = id;
    cmd["sessionId"] = session;
    history_.push_back(cmd);
    return cmd;
  }

  std::size_t uniform(std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_);
  }

 private:
  struct Count {
    std::uint64_t sent = 0, received = 0;
  };

  void connect() {
    client_ = std::make_unique<WsClient>(port_);
    closed_by_server_ = false;
    counts_.clear();
    auto ready = client_->next(std::chrono::seconds(10));
    if (!ready || (*ready).value("type", "") != "server_ready")
      stats_.violations.push_back(name_ + ": no server_ready after connecting");
    // Subscribe to a few sessions, so that events and agent_exited/agent_restarted notices
    // flow to this connection too.
    for (int i = 0; i < 3; ++i)
      send({{"type", "switch_session"}, {"id", name_ + "-sub-" + std::to_string(next_id_++)},
            {"sessionId", sessions_[uniform(0, sessions_.size() - 1)]}}),
      ++stats_.subscriptions;
  }

  void send(const nlohmann::json& cmd) {
    client_->send(cmd);
    ++stats_.sent;
    ++counts_[cmd["id"].get<std::string>()].sent;
  }

  void account(const std::string& raw) {
    // Only `type`, `id`, `code`, `replayed` matter; events are counted, not parsed further.
    auto j = nlohmann::json::parse(raw, nullptr, false);
    if (j.is_discarded()) {
      stats_.violations.push_back(name_ + ": unparsable frame " + raw.substr(0, 100));
      return;
    }
    auto type = j.value("type", "");
    if (type == "event") {
      ++stats_.events;
      return;
    }
    if (type == "events_dropped") ++stats_.events_dropped_notices;
    if (type != "response") return;
    ++stats_.responses;
    if (j.value("replayed", false)) ++stats_.replayed;
    ++stats_.codes[j.value("success", false) ? std::string("ok") : j.value("code", std::string("?"))];
    if (!j.contains("id") || !j["id"].is_string()) {
      stats_.violations.push_back(name_ + ": response without id " + raw.substr(0, 200));
      return;
    }
    auto it = counts_.find(j["id"].get<std::string>());
    if (it == counts_.end()) {
      stats_.violations.push_back(name_ + ": response to an id never sent here " + raw.substr(0, 200));
      return;
    }
    ++it->second.received;
    if (it->second.received > it->second.sent)
      stats_.violations.push_back(name_ + ": extra response " + raw.substr(0, 200));
  }

  void finish_connection(bool check) {
    for (const auto& [id, c] : counts_) {
      if (check) {
        stats_.checked_sent += c.sent;
        if (c.received != c.sent)
          stats_.violations.push_back(name_ + ": " + id + " sent " + std::to_string(c.sent) +
                                      "x, answered " + std::to_string(c.received) + "x");
      } else if (c.received < c.sent) {
        stats_.lost_with_connection += c.sent - c.received;
      }
    }
    counts_.clear();
    client_.reset();
  }

  std::uint16_t port_;
  std::string name_;
  std::mt19937_64 rng_;
  std::vector<std::string> sessions_;
  std::unique_ptr<WsClient> client_;
  bool closed_by_server_ = false;
  std::map<std::string, Count> counts_;
  std::vector<nlohmann::json> history_;
  std::uint64_t next_id_ = 0;
  TrafficStats stats_;
};

// The seed: PI_SERVER_CHAOS_SEED if set, else `fallback`.
inline std::uint64_t chaos_seed(std::uint64_t fallback) {
  if (const char* s = std::getenv("PI_SERVER_CHAOS_SEED")) return std::stoull(s);
  return fallback;
}

}  // namespace pi_server::testing
