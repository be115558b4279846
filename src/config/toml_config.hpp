#pragma once
// The config file (--config FILE): TOML read with toml++ and handed to CLI11 as config
// items, so one rule decides precedence (a flag given on the command line wins over the
// file) and each flag has one conversion and one check, wherever its value came from.
//
// Every key is a long flag name without "--" ("max-sessions"). This reader refuses what
// CLI11 2.1's own reader lets through or cannot read: unknown keys, tables, a scalar where
// a boolean flag is, an array for a flag that is not repeatable, TOML syntax errors. Each
// error names the file, line and key (docs/configuration.md, "Config file").
#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pi_server::config {

// Which values --print-config and the reload log must not show.
struct SecretKeys {
  std::set<std::string> whole;       // the value is masked ("auth-tokens", "tls-key", ...)
  std::set<std::string> after_equals;  // NAME=VALUE entries: VALUE is masked ("agent-env")
};

// One key of the effective configuration, as TOML text ("256", "\"127.0.0.1:3141\"",
// "[\"a\", \"b\"]"), secrets already masked.
struct Setting {
  std::string key;
  std::string value;
  std::string description;
};

class TomlConfig : public CLI::Config {
 public:
  // `app` is the App this reader is installed on; it must outlive the reader.
  TomlConfig(const CLI::App& app, SecretKeys secrets) : app_(app), secrets_(std::move(secrets)) {}

  // Throws CLI::ConfigError with "FILE:LINE: key 'K': why" for anything it refuses.
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
  // The effective configuration as a TOML file, every key with its description.
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;

  // Every configurable key of `app` with its effective value (masked), in --help order.
  std::vector<Setting> settings(const CLI::App& app) const;

  // "FILE:LINE" when `key` was read from the file (and not overridden on the command line).
  std::optional<std::string> position_of(const std::string& key) const;
  // Rewrites a CLI11 conversion or validation error about a key set in the file so that it
  // names the file, line and key; other messages come back unchanged.
  std::string explain(const std::string& cli11_message) const;

 private:
  const CLI::App& app_;
  SecretKeys secrets_;
  mutable std::string path_;
  mutable std::map<std::string, int> lines_;  // keys taken from the file -> line
};

// Key names of the options that have no config key (actions, and --config itself).
bool is_action_option(const CLI::Option& option);

}  // namespace pi_server::config
