#pragma once
// The operator's own pi configuration, as the base of every session's (issue: "use the
// operator's pi setup"). pi reads its config from an agent dir (PI_CODING_AGENT_DIR, else
// ~/.pi/agent): models.json (providers), auth.json (logins), settings.json (default model...)
// and resource folders (extensions, skills, prompts, themes). The daemon finds the
// operator's dir, decides whether a model is configured there (else: the offline demo
// model), and gives each session a private agent dir built on it: links to the shared files
// and folders, and a copy of settings.json, so a session's setting changes stay its own and
// the operator's files are never written.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::agent {

enum class BaseSource {
  agent_env,   // PI_CODING_AGENT_DIR given with --agent-env
  daemon_env,  // PI_CODING_AGENT_DIR in the daemon's environment
  home,        // pi's own default, ~/.pi/agent (it exists)
  state_dir,   // <state dir>/agent: nothing of the operator's
};
std::string_view to_string(BaseSource source);

struct PiSetup {
  std::filesystem::path base_dir;
  BaseSource source = BaseSource::state_dir;
  // The daemon never writes into an operator's dir.
  bool operator_owned() const { return source != BaseSource::state_dir; }
};

// First match wins: --agent-env PI_CODING_AGENT_DIR=DIR (or the bare name: the daemon's
// value), PI_CODING_AGENT_DIR in the daemon's environment, ~/.pi/agent when it exists,
// <state_dir>/agent.
PiSetup resolve_pi_setup(const std::vector<std::string>& extra_env, char** environ,
                         const std::filesystem::path& state_dir);

// What makes a model usable without the demo model, or nullopt when nothing does:
// --default-model, a default model in the base's settings.json, a provider credential in the
// agent's environment (the daemon's allow-listed one, or --agent-env), logins in the base's
// auth.json, or a provider of the base's models.json. Says which, for the log.
std::optional<std::string> configured_model(const PiSetup& setup, const AgentOptions& options,
                                            char** environ);

// The files and folders a session's private agent dir takes from the base.
inline constexpr std::string_view kLinkedFromBase[] = {"models.json", "auth.json", "extensions",
                                                       "skills",      "prompts",   "themes"};

// Builds (or refreshes, on restart) a session's private agent dir: links to the base's
// shared files and folders that exist (models.json to `models_json` instead when that is
// set: the demo model's copy), and a copy of the base's settings.json made once (a session's
// own changes survive its restarts).
Status prepare_private_agent_dir(const std::filesystem::path& private_dir,
                                 const std::filesystem::path& base_dir,
                                 const std::filesystem::path& models_json);

}  // namespace pi_server::agent
