#include "agent/agent_launch.hpp"

#include <array>
#include <map>

namespace pi_server::agent {
namespace {

constexpr std::array<std::string_view, 10> kExactNames = {
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "TMPDIR", "TZ", "SHELL", "NO_COLOR"};
constexpr std::array<std::string_view, 3> kPrefixes = {"LC_", "NODE_", "PI_"};
// Provider credentials pi documents; passing them lets a session use a real model.
constexpr std::array<std::string_view, 18> kProviderKeys = {
    "ANTHROPIC_API_KEY", "ANTHROPIC_OAUTH_TOKEN", "OPENAI_API_KEY",     "AZURE_OPENAI_API_KEY",
    "GEMINI_API_KEY",    "GOOGLE_API_KEY",        "GROQ_API_KEY",       "CEREBRAS_API_KEY",
    "XAI_API_KEY",       "OPENROUTER_API_KEY",    "MISTRAL_API_KEY",    "DEEPSEEK_API_KEY",
    "ZAI_API_KEY",       "AI_GATEWAY_API_KEY",    "AWS_PROFILE",        "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_REGION"};

}  // namespace

bool is_allowed_env_name(std::string_view name) {
  for (auto n : kExactNames)
    if (n == name) return true;
  for (auto p : kPrefixes)
    if (name.starts_with(p)) return true;
  for (auto k : kProviderKeys)
    if (k == name) return true;
  return false;
}

std::vector<std::string> split_command(std::string_view command) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < command.size()) {
    while (i < command.size() && command[i] == ' ') ++i;
    std::size_t start = i;
    while (i < command.size() && command[i] != ' ') ++i;
    if (i > start) out.emplace_back(command.substr(start, i - start));
  }
  return out;
}

SpawnRequest build_spawn_request(const AgentOptions& options, const SessionLaunch& session,
                                 char** parent_env) {
  SpawnRequest req;
  req.argv = options.command;
  req.argv.push_back("--mode");
  req.argv.push_back("rpc");
  req.argv.push_back("--session-dir");
  req.argv.push_back(session.session_dir.string());
  if (!session.session_file.empty()) {
    // The file the session was on: a restart (of the agent or the daemon) continues exactly
    // that conversation, also after a switch to another file.
    req.argv.push_back("--session");
    req.argv.push_back(session.session_file.string());
  } else {
    // The newest session file in this session's own dir: the first start finds none and
    // begins a new one.
    req.argv.push_back("--continue");
  }
  const std::string& model = session.model.empty() ? options.default_model : session.model;
  if (!model.empty()) {
    auto slash = model.find('/');
    if (slash == std::string::npos) {
      req.argv.push_back("--model");
      req.argv.push_back(model);
    } else {
      req.argv.push_back("--provider");
      req.argv.push_back(model.substr(0, slash));
      req.argv.push_back("--model");
      req.argv.push_back(model.substr(slash + 1));
    }
  }
  if (!session.name.empty()) {
    req.argv.push_back("--name");
    req.argv.push_back(session.name);
  }
  if (!session.thinking_level.empty()) {
    req.argv.push_back("--thinking");
    req.argv.push_back(session.thinking_level);
  }

  // Ordered map: later sources override earlier ones, output is deterministic.
  std::map<std::string, std::string> env;
  for (char** e = parent_env; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    if (is_allowed_env_name(name)) env[std::string(name)] = std::string(entry.substr(eq + 1));
  }
  // No network at run time unless asked for: no catalog refresh, version check or telemetry.
  env["PI_OFFLINE"] = "1";
  env["PI_SKIP_VERSION_CHECK"] = "1";
  env["PI_TELEMETRY"] = "0";
  if (!session.agent_dir.empty()) env["PI_CODING_AGENT_DIR"] = session.agent_dir.string();
  if (!options.compile_cache_dir.empty())
    env["NODE_COMPILE_CACHE"] = options.compile_cache_dir.string();
  if (!options.node_options.empty()) {
    std::string& node = env["NODE_OPTIONS"];
    node = node.empty() ? options.node_options : node + " " + options.node_options;
  }
  for (const auto& extra : options.extra_env) {
    auto eq = extra.find('=');
    // PI_CODING_AGENT_DIR given this way names the base dir (pi_setup.hpp); the agent keeps
    // its session's private dir, built on that base.
    if (extra.substr(0, eq) == "PI_CODING_AGENT_DIR" && !session.agent_dir.empty()) continue;
    if (eq == std::string::npos) {
      // NAME alone: pass the daemon's own value through.
      for (char** e = parent_env; e && *e; ++e) {
        std::string_view entry(*e);
        if (entry.size() > extra.size() && entry.starts_with(extra) && entry[extra.size()] == '=')
          env[extra] = std::string(entry.substr(extra.size() + 1));
      }
    } else {
      env[extra.substr(0, eq)] = extra.substr(eq + 1);
    }
  }
  for (auto& [k, v] : env) req.env.push_back(k + "=" + v);
  req.cwd = session.cwd;
  return req;
}

}  // namespace pi_server::agent
