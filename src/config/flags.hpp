#pragma once
// Reads the daemon's command line (and --config file) into its options.
#include <string>
#include <vector>

#include "config/toml_config.hpp"
#include "observability/log.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::config {

struct CommandLine {
  ServerOptions options;
  log::Level log_level = log::Level::info;
  log::Format log_format = log::Format::json;
  // The arguments as given (without argv[0]): SIGHUP parses them again, re-reading the file.
  std::vector<std::string> args;
  // The effective configuration, key by key, secrets masked (--print-config, reload diffs).
  std::vector<Setting> settings;
};

// Why parsing ended without a CommandLine: the exit code (0 after --help, --version,
// --print-config; 2 for a bad flag, key or value) and the text to print (stdout when the
// code is 0, else one line for stderr).
struct ParseStop {
  int exit_code = 0;
  std::string output;
};

// Parses and checks every flag and the --config file. Prints nothing.
Result<CommandLine, ParseStop> parse_arguments(const std::vector<std::string>& args);

// parse_arguments on argv, printing what it stops with; fails with the exit code.
Result<CommandLine, int> parse_command_line(int argc, char** argv);

}  // namespace pi_server::config
