#pragma once
// What goes on an agent's command line and into its environment (DESIGN §8).
#include <filesystem>
#include <string>
#include <vector>

#include "agent/spawner.hpp"
#include "pi_server/options.hpp"

namespace pi_server::agent {

// Per-session settings that shape the agent's command line.
struct SessionLaunch {
  std::string cwd;            // empty: the daemon's cwd
  std::string model;          // "provider/id"; empty: AgentOptions::default_model
  std::string thinking_level;
  std::string name;
  std::filesystem::path session_dir;  // pi keeps this session's files here
  // pi's session file to resume (`--session`): the one the session used last, kept across
  // agent restarts, switch_session_file and daemon restarts. Empty: `--continue` (the
  // newest file in session_dir; none on a first start).
  std::filesystem::path session_file;
  std::string owner = "local";  // the principal the session belongs to (stored with it)
  std::filesystem::path agent_dir;    // PI_CODING_AGENT_DIR (models.json, settings.json)
  std::string session_id;  // the daemon's id for the session: log lines only (Session sets it)
};

// argv = options.command + --mode rpc + the session's flags; env = the allow-listed part
// of `parent_env` + pi's offline defaults + options.extra_env.
SpawnRequest build_spawn_request(const AgentOptions& options, const SessionLaunch& session,
                                 char** parent_env);

// True for environment variable names the agent may inherit from the daemon.
bool is_allowed_env_name(std::string_view name);

// Splits an --agent-command value on spaces (no shell, no quoting).
std::vector<std::string> split_command(std::string_view command);

}  // namespace pi_server::agent
