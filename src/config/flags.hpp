#pragma once
// Reads the daemon's command line (and --config file) into its options.
#include "observability/log.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::config {

struct CommandLine {
  ServerOptions options;
  log::Level log_level = log::Level::info;
  log::Format log_format = log::Format::json;
};

// Parses and checks every flag. Fails with the process exit code: 0 after --help or
// --version (printed), 2 after a bad flag (the reason printed on stderr).
Result<CommandLine, int> parse_command_line(int argc, char** argv);

}  // namespace pi_server::config
