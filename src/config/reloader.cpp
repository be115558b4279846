#include "config/reloader.hpp"

#include "observability/log.hpp"

namespace pi_server::config {

void Reloader::add_step(std::string name, std::set<std::string> keys, Step step) {
  steps_.push_back({std::move(name), std::move(keys), std::move(step)});
}

ReloadSummary Reloader::reload() {
  ReloadSummary summary;
  auto parsed = parse_arguments(running_.args);
  if (!parsed) {
    summary.parse_error = parsed.failure().output;
    while (!summary.parse_error.empty() && summary.parse_error.back() == '\n') summary.parse_error.pop_back();
    log::error("reload_failed", {{"error", summary.parse_error}, {"kept", "the running configuration"}});
    return summary;
  }
  summary.parsed = true;
  const CommandLine& next = parsed.value();

  std::map<std::string, std::string> before;
  for (const Setting& s : running_.settings) before[s.key] = s.value;
  std::set<std::string> changed;
  for (const Setting& s : next.settings)
    if (before[s.key] != s.value) changed.insert(s.key);

  std::set<std::string> applied;
  nlohmann::json steps = nlohmann::json::object();
  for (const Entry& entry : steps_) {
    std::set<std::string> mine;
    for (const auto& key : entry.keys)
      if (changed.count(key)) mine.insert(key);
    if (!entry.keys.empty() && mine.empty()) continue;
    ReloadStepOutcome outcome = entry.step(next, mine);
    if (outcome.ok) applied.insert(mine.begin(), mine.end());
    steps[entry.name] = {{"ok", outcome.ok}, {"detail", outcome.detail}};
    summary.steps[entry.name] = std::move(outcome);
  }
  for (const auto& key : changed)
    if (!applied.count(key)) summary.needs_restart.push_back(key);

  // The running configuration takes the applied keys only: a key that needs a restart is
  // reported again on the next reload, until the daemon restarts.
  for (Setting& s : running_.settings)
    if (applied.count(s.key))
      for (const Setting& n : next.settings)
        if (n.key == s.key) s.value = n.value;

  log::info("reload", {{"steps", steps}, {"changed", changed}});
  if (!summary.needs_restart.empty()) {
    nlohmann::json keys = nlohmann::json::object();
    for (const Setting& s : next.settings)
      if (std::find(summary.needs_restart.begin(), summary.needs_restart.end(), s.key) !=
          summary.needs_restart.end())
        keys[s.key] = {{"running", before[s.key]}, {"file", s.value}};
    log::warn("reload_needs_restart", {{"keys", keys}});
  }
  return summary;
}

}  // namespace pi_server::config
