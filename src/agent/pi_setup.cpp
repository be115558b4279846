#include "agent/pi_setup.hpp"

#include <nlohmann/json.hpp>

#include "agent/agent_launch.hpp"
#include "pi_server/read_file.hpp"

namespace pi_server::agent {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kAgentDirVar = "PI_CODING_AGENT_DIR";

std::optional<std::string> env_value(char** environ, std::string_view name) {
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=')
      return std::string(entry.substr(name.size() + 1));
  }
  return std::nullopt;
}

// A JSON object read from `path`, or nullopt (missing, unreadable, not an object).
std::optional<json> read_object(const fs::path& path) {
  auto text = read_file(path);
  if (!text) return std::nullopt;
  auto doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  return doc;
}

bool non_empty_string(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
}

}  // namespace

std::string_view to_string(BaseSource source) {
  switch (source) {
    case BaseSource::agent_env: return "--agent-env PI_CODING_AGENT_DIR";
    case BaseSource::daemon_env: return "PI_CODING_AGENT_DIR";
    case BaseSource::home: return "~/.pi/agent";
    case BaseSource::state_dir: return "state dir";
  }
  return "?";
}

PiSetup resolve_pi_setup(const std::vector<std::string>& extra_env, char** environ,
                         const fs::path& state_dir) {
  // The last --agent-env naming it wins, as for every --agent-env variable.
  std::optional<std::string> from_flag;
  for (const auto& entry : extra_env) {
    if (entry == kAgentDirVar) {
      from_flag = env_value(environ, kAgentDirVar);
    } else if (entry.starts_with(std::string(kAgentDirVar) + "=")) {
      from_flag = entry.substr(kAgentDirVar.size() + 1);
    }
  }
  if (from_flag && !from_flag->empty()) return {fs::path(*from_flag), BaseSource::agent_env};
  if (auto v = env_value(environ, kAgentDirVar); v && !v->empty())
    return {fs::path(*v), BaseSource::daemon_env};
  if (auto home = env_value(environ, "HOME"); home && !home->empty()) {
    std::error_code ec;
    fs::path dir = fs::path(*home) / ".pi" / "agent";
    if (fs::is_directory(dir, ec)) return {dir, BaseSource::home};
  }
  return {state_dir / "agent", BaseSource::state_dir};
}

std::optional<std::string> configured_model(const PiSetup& setup, const AgentOptions& options,
                                            char** environ) {
  if (!options.default_model.empty()) return "--default-model " + options.default_model;
  fs::path settings = setup.base_dir / "settings.json";
  if (auto doc = read_object(settings); doc && non_empty_string(*doc, "defaultModel"))
    return "defaultModel in " + settings.string();
  // Credentials the agent will see: the daemon's allow-listed environment and --agent-env.
  auto is_credential = [](std::string_view name) {
    return is_allowed_env_name(name) &&
           (name.ends_with("_API_KEY") || name.ends_with("_TOKEN") || name == "AWS_PROFILE" ||
            name == "AWS_ACCESS_KEY_ID");
  };
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos || eq + 1 == entry.size()) continue;
    if (is_credential(entry.substr(0, eq)))
      return std::string(entry.substr(0, eq)) + " in the environment";
  }
  for (const auto& entry : options.extra_env) {
    auto eq = entry.find('=');
    std::string name = entry.substr(0, eq);
    if (name.ends_with("_API_KEY") || name.ends_with("_TOKEN")) return name + " from --agent-env";
  }
  fs::path auth = setup.base_dir / "auth.json";
  if (auto doc = read_object(auth); doc && !doc->empty()) return "logins in " + auth.string();
  fs::path models = setup.base_dir / "models.json";
  if (auto doc = read_object(models)) {
    if (auto providers = doc->find("providers"); providers != doc->end() && providers->is_object())
      for (const auto& [name, provider] : providers->items())
        if (name != "pi-server-demo") return "provider " + name + " in " + models.string();
  }
  return std::nullopt;
}

Status prepare_private_agent_dir(const fs::path& private_dir, const fs::path& base_dir,
                                 const fs::path& models_json) {
  std::error_code ec;
  fs::create_directories(private_dir, ec);
  if (ec) return Status::error("cannot create " + private_dir.string() + ": " + ec.message());
  for (std::string_view name : kLinkedFromBase) {
    fs::path link = private_dir / name;
    fs::path target = (name == "models.json" && !models_json.empty()) ? models_json : base_dir / name;
    bool target_exists = fs::exists(target, ec);
    // Refresh a link that points elsewhere (the base or the demo choice changed since).
    if (fs::is_symlink(fs::symlink_status(link, ec))) {
      if (fs::read_symlink(link, ec) == target && target_exists) continue;
      fs::remove(link, ec);
    }
    if (!target_exists || fs::exists(fs::symlink_status(link, ec))) continue;
    fs::create_symlink(target, link, ec);
    if (ec) return Status::error("cannot link " + link.string() + ": " + ec.message());
  }
  // settings.json is a copy: pi writes the settings a session changes (set_auto_retry,
  // set_steering_mode...) into it, and those must reach neither the operator nor other
  // sessions. Made once, so a restart keeps what the session changed.
  fs::path settings = private_dir / "settings.json";
  fs::path base_settings = base_dir / "settings.json";
  if (!fs::exists(settings, ec) && fs::exists(base_settings, ec)) {
    fs::copy_file(base_settings, settings, ec);
    if (ec) return Status::error("cannot copy " + base_settings.string() + ": " + ec.message());
  }
  return Status::ok();
}

}  // namespace pi_server::agent
