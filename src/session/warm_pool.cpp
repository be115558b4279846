#include "session/warm_pool.hpp"

#include <chrono>
#include <fstream>
#include <random>

#include "agent/pi_setup.hpp"
#include "observability/log.hpp"
#include "protocol/frames.hpp"
#include "protocol/json_scan.hpp"

namespace pi_server::session {
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

// The pool's own commands to a starting agent: a first get_state (it runs), a switch_session
// to a fresh header-only file in the daemon's cwd (warm-up), and a get_state after it.
constexpr std::string_view kProbeId = "\"pi-server-pool-probe\"";
constexpr std::string_view kWarmUpId = "\"pi-server-pool-warm-up\"";
constexpr std::string_view kStateId = "\"pi-server-pool-state\"";

std::string random_hex(std::size_t digits) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < digits; ++i) out.push_back(hex[rng() & 15]);
  return out;
}

std::string uuid4() {
  std::string h = random_hex(32);
  h[12] = '4';
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

// 2026-11-28T08:00:00.123Z (pi's header timestamp) and the same with '-' for file names.
std::string iso_now_ms(bool for_file_name) {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, for_file_name ? "%Y-%m-%dT%H-%M-%S" : "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, for_file_name ? "%s-%03dZ" : "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

}  // namespace

Result<HeaderOnlySession> write_header_only_session(const fs::path& dir, const std::string& cwd) {
  std::string id = uuid4();
  fs::path file = dir / (iso_now_ms(true) + "_" + id + ".jsonl");
  nlohmann::json header = {{"type", "session"}, {"version", 3}, {"id", id},
                           {"timestamp", iso_now_ms(false)}, {"cwd", cwd}};
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << header.dump() << '\n';
  out.close();
  if (!out) return Status::error("Could not write a session file in " + dir.string());
  return HeaderOnlySession{file, id};
}

struct WarmPool::Entry {
  std::string name;
  fs::path session_dir;
  std::shared_ptr<agent::AgentChannel> agent;
  // What the agent's callbacks forward to: the pool's own handlers, then its session's.
  std::shared_ptr<agent::AgentCallbacks> slot = std::make_shared<agent::AgentCallbacks>();
  bool ready = false;
  nlohmann::json state;  // the probe's answer (get_state data)
  fs::path placeholder_file;  // the warm-up's header-only file
};

WarmPool::WarmPool(Scheduler& scheduler, agent::AgentLauncher& launcher,
                   const ServerOptions& options)
    : scheduler_(scheduler), launcher_(launcher), options_(options) {
  std::error_code ec;
  default_cwd_ = fs::current_path(ec).string();
}

WarmPool::~WarmPool() {
  for (auto& e : entries_) {
    e->agent->detach();
    e->agent->kill_now();
  }
}

bool WarmPool::fits(const agent::SessionLaunch& launch) {
  // These become command-line flags of the agent; a pooled one was started without them.
  return launch.model.empty() && launch.thinking_level.empty() && launch.name.empty();
}

std::size_t WarmPool::ready() const {
  std::size_t n = 0;
  for (const auto& e : entries_) n += e->ready;
  return n;
}

void WarmPool::start() {
  started_ = true;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.state_dir / "sessions", ec)) {
    if (entry.path().filename().string().rfind("pool-", 0) != 0) continue;
    std::error_code rm_ec;
    // A session made from a pooled agent keeps its pi files here; it restarts on an agent
    // dir of its own (<state>/sessions/<id>/agent), so this one is unused.
    fs::remove_all(entry.path() / "agent", rm_ec);
    if (fs::is_empty(entry.path(), rm_ec)) fs::remove(entry.path(), rm_ec);
  }
  refill();
}

void WarmPool::refill() {
  if (!started_ || stopped_) return;
  std::size_t before = stats_.started;
  while (entries_.size() < options_.warm_agents && !stopped_) {
    spawn_one();
    if (stats_.started == before++) break;  // failed: a retry is scheduled
  }
}

void WarmPool::spawn_one() {
  auto entry = std::make_shared<Entry>();
  entry->name = "pool-" + random_hex(12);
  entry->session_dir = options_.state_dir / "sessions" / entry->name;
  agent::SessionLaunch launch;
  launch.cwd = default_cwd_;
  launch.session_dir = entry->session_dir;
  launch.agent_dir = entry->session_dir / "agent";
  launch.session_id = entry->name;
  auto prepared = agent::prepare_private_agent_dir(launch.agent_dir, options_.agent.base_agent_dir,
                                                   options_.agent.models_json);
  if (!prepared) {
    ++stats_.failed;
    log::warn("warm_pool_dir_failed", {{"error", prepared.message()}});
    stopped_ = true;  // a broken state dir: do not spin
    return;
  }
  // The callbacks forward through the slot, so the agent can change owners.
  auto slot = entry->slot;
  agent::AgentCallbacks forward;
  forward.on_line = [slot](std::string_view line) { if (slot->on_line) slot->on_line(line); };
  forward.on_oversize_line = [slot](std::size_t n) { if (slot->on_oversize_line) slot->on_oversize_line(n); };
  forward.on_stderr_line = [slot](std::string_view line) { if (slot->on_stderr_line) slot->on_stderr_line(line); };
  forward.on_exit = [slot](agent::ExitStatus s) { if (slot->on_exit) slot->on_exit(s); };
  std::weak_ptr<Entry> weak = entry;
  auto alive = std::weak_ptr<int>(alive_);
  slot->on_line = [this, weak, alive](std::string_view line) {
    if (auto e = weak.lock(); e && !alive.expired()) on_line(e, line);
  };
  slot->on_exit = [this, weak, alive](agent::ExitStatus) {
    if (auto e = weak.lock(); e && !alive.expired()) on_exit(e);
  };
  auto launched = launcher_.launch(options_.agent, launch, std::move(forward));
  if (!launched) {
    ++stats_.failed;
    ++failures_in_a_row_;
    std::error_code ec;
    fs::remove_all(entry->session_dir, ec);
    // Try again later, backing off: a missing agent binary must not spin the loop.
    auto delay = milliseconds(1000) * (1u << std::min<std::uint32_t>(failures_in_a_row_, 5));
    if (!refill_scheduled_) {
      refill_scheduled_ = true;
      scheduler_.schedule(delay, [this, alive] {
        if (alive.expired()) return;
        refill_scheduled_ = false;
        refill();
      });
    }
    return;
  }
  entry->agent = std::move(launched.value());
  entries_.push_back(entry);
  ++stats_.started;
  entry->agent->write_line(R"({"type":"get_state","id":)" + std::string(kProbeId) + "}");
}

void WarmPool::on_line(const std::shared_ptr<Entry>& entry, std::string_view line) {
  auto head = protocol::scan_agent_line(line);
  if (head.type != "response") return;
  auto answer = nlohmann::json::parse(line, nullptr, false);
  bool success = answer.is_object() && answer.value("success", false);
  if (head.raw_id == kProbeId) {
    // It runs. Measured (docs/benchmarks.md): pi's first switch_session takes ~40 ms, later
    // ones ~20: switch once now, to a fresh header-only file in the daemon's cwd, so the
    // switch of a create for another cwd (or of a wake-up) is a warm one. The same-cwd
    // create then finds the agent on a fresh file, as if just started.
    auto header = success ? write_header_only_session(entry->session_dir, default_cwd_)
                          : Result<HeaderOnlySession>(Status::error("no first get_state"));
    if (header) {
      entry->placeholder_file = header->path;
      nlohmann::json sw = {{"type", "switch_session"}, {"sessionPath", header->path.string()}};
      std::string command = sw.dump();
      command.pop_back();
      entry->agent->write_line(command + R"(,"id":)" + std::string(kWarmUpId) + "}");
      return;
    }
    if (success) log::warn("warm_pool_warm_up_skipped", {{"agent", entry->name}, {"error", header.error()}});
  } else if (head.raw_id == kWarmUpId) {
    if (!success || (answer.contains("data") && answer["data"].is_object() &&
                     answer["data"].value("cancelled", false))) {
      log::warn("warm_pool_warm_up_failed", {{"agent", entry->name}});
      // It stayed on its own (unwritten) file: the header-only one is nobody's.
      std::error_code ec;
      fs::remove(entry->placeholder_file, ec);
      entry->placeholder_file.clear();
    }
    entry->agent->write_line(R"({"type":"get_state","id":)" + std::string(kStateId) + "}");
    return;
  } else if (head.raw_id != kStateId) {
    return;
  }
  if (success && answer.contains("data")) entry->state = answer["data"];
  entry->ready = true;
  failures_in_a_row_ = 0;
  log::debug("warm_pool_agent_ready", {{"agent", entry->name}, {"pid", entry->agent->pid()}});
}

void WarmPool::on_exit(const std::shared_ptr<Entry>& entry) {
  ++stats_.failed;
  ++failures_in_a_row_;
  log::warn("warm_pool_agent_exited", {{"agent", entry->name}});
  std::erase(entries_, entry);
  std::error_code ec;
  fs::remove_all(entry->session_dir, ec);
  if (stopped_ || refill_scheduled_) return;
  refill_scheduled_ = true;
  auto delay = milliseconds(1000) * (1u << std::min<std::uint32_t>(failures_in_a_row_, 5));
  scheduler_.schedule(delay, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    refill_scheduled_ = false;
    refill();
  });
}

std::optional<PooledAgent> WarmPool::take(
    const agent::SessionLaunch& launch,
    const std::function<bool(const std::filesystem::path& agent_dir)>& accept) {
  if (options_.warm_agents == 0) return std::nullopt;
  if (!fits(launch)) {
    ++stats_.bypassed;
    return std::nullopt;
  }
  auto it = std::find_if(entries_.begin(), entries_.end(), [](const auto& e) { return e->ready; });
  if (it == entries_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  if (accept && !accept((*it)->session_dir / "agent")) {
    ++stats_.bypassed;
    return std::nullopt;
  }
  auto entry = *it;
  entries_.erase(it);
  ++stats_.hits;
  PooledAgent out;
  out.agent = entry->agent;
  out.session_dir = entry->session_dir;
  out.agent_dir = entry->session_dir / "agent";
  out.cwd = default_cwd_;
  out.state = entry->state;
  out.placeholder_file = entry->placeholder_file;
  out.bind = [slot = entry->slot](agent::AgentCallbacks callbacks) { *slot = std::move(callbacks); };
  // Refill on a later turn: the taker's create_session goes first.
  scheduler_.schedule(milliseconds(0), [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) refill();
  });
  return out;
}

void WarmPool::stop_all() {
  stopped_ = true;
  for (auto& e : entries_) {
    *e->slot = {};
    e->agent->stop(options_.agent.eof_grace, options_.agent.term_grace);
  }
}

}  // namespace pi_server::session
