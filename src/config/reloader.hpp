#pragma once
// What SIGHUP does (docs/operations.md, "Reload"): parse the daemon's arguments again (so the
// --config file is re-read), then run each named reload step. A step applies what it can
// live and reports it; keys that changed but that no step applies are logged once per
// reload as needing a restart. Steps that watch files rather than keys (token files, TLS
// certificates) run on every reload with no keys.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/flags.hpp"

namespace pi_server::config {

// What one step did.
struct ReloadStepOutcome {
  bool ok = true;
  std::string detail;  // what changed, or why it could not ("" when nothing to do)
};

// The result of one reload, as logged.
struct ReloadSummary {
  bool parsed = false;                  // false: the arguments or file no longer parse; nothing ran
  std::string parse_error;              // the one-line reason when !parsed
  std::map<std::string, ReloadStepOutcome> steps;  // by step name, the steps that ran
  std::vector<std::string> needs_restart;          // changed keys no step applies
};

class Reloader {
 public:
  // `running` is the configuration the daemon started with.
  explicit Reloader(CommandLine running) : running_(std::move(running)) {}

  // A step that applies `keys` live. It runs when one of them changed (or always, when
  // `keys` is empty) and gets the new command line and the changed keys among its own.
  using Step = std::function<ReloadStepOutcome(const CommandLine& next, const std::set<std::string>& changed)>;
  void add_step(std::string name, std::set<std::string> keys, Step step);

  // Re-parses and runs the steps; logs "reload" (or "reload_failed") and
  // "reload_needs_restart". Keys a step applied count as running from now on.
  ReloadSummary reload();

 private:
  struct Entry {
    std::string name;
    std::set<std::string> keys;
    Step step;
  };
  CommandLine running_;
  std::vector<Entry> steps_;
};

}  // namespace pi_server::config
