#include "protocol/envelope.hpp"

#include <array>

#include "protocol/json_scan.hpp"

namespace pi_server::protocol {
namespace {

constexpr std::array<std::string_view, 9> kServerCommands = {
    "create_session", "delete_session", "list_sessions",       "switch_session",
    "unsubscribe",    "get_metrics",    "health_check",        "get_command_history",
    "set_lifecycle_events",
};

// Server commands that act on one session and so need `sessionId`.
bool needs_session_id(std::string_view type) {
  return type == "delete_session" || type == "switch_session" || type == "unsubscribe";
}

ParseResult fail(ErrorCode code, std::string message, std::optional<std::string> type = {},
                 std::optional<std::string> id = {}) {
  ParseResult r;
  r.error = EnvelopeError{code, std::move(message), std::move(type), std::move(id)};
  return r;
}

}  // namespace

std::string_view command_label(std::string_view type) {
  static constexpr std::string_view kPiCommands[] = {
      "prompt", "steer", "follow_up", "abort", "get_state", "get_messages", "get_entries",
      "set_model", "cycle_model", "get_available_models", "set_thinking_level",
      "cycle_thinking_level", "get_available_thinking_levels", "set_steering_mode",
      "set_follow_up_mode", "clear_queue", "compact", "set_auto_compaction", "set_auto_retry",
      "abort_retry", "bash", "abort_bash", "get_session_stats", "export_html", "new_session",
      "fork", "clone", "get_fork_messages", "get_tree", "get_last_assistant_text",
      "set_session_name", "get_commands", "extension_ui_response", "switch_session_file"};
  for (auto t : kServerCommands)
    if (t == type) return t;
  for (auto t : kPiCommands)
    if (t == type) return t;
  return "other";
}

bool is_server_command(std::string_view type) {
  for (auto t : kServerCommands)
    if (t == type) return true;
  return false;
}

ParseResult parse_envelope(std::string_view text) {
  // nlohmann (3.11) parses and destroys without recursion, but copying and dumping recurse
  // once per level: a deep value is refused here, before anything copies it.
  if (nests_deeper_than(text, kMaxJsonDepth)) {
    auto deep = nlohmann::json::parse(text, nullptr, false);
    std::optional<std::string> id, type;
    if (deep.is_object()) {
      if (auto it = deep.find("id"); it != deep.end() && it->is_string()) id = it->get<std::string>();
      if (auto it = deep.find("type"); it != deep.end() && it->is_string()) type = it->get<std::string>();
    }
    return fail(ErrorCode::invalid_command,
                "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels", type, id);
  }
  nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return fail(ErrorCode::invalid_command, "Malformed JSON");
  if (!body.is_object()) return fail(ErrorCode::invalid_command, "A command must be a JSON object");

  // Read `id` first so every later error can echo it.
  std::optional<std::string> id;
  if (auto it = body.find("id"); it != body.end()) {
    if (!it->is_string()) return fail(ErrorCode::invalid_command, "Field 'id' must be a string");
    id = it->get<std::string>();
  }
  auto type_it = body.find("type");
  if (type_it == body.end())
    return fail(ErrorCode::invalid_command, "Missing field 'type'", std::nullopt, id);
  if (!type_it->is_string() || type_it->get_ref<const std::string&>().empty())
    return fail(ErrorCode::invalid_command, "Field 'type' must be a non-empty string", std::nullopt,
                id);
  std::string type = type_it->get<std::string>();
  if (type == "response" || type == "event")
    return fail(ErrorCode::unknown_command, "Unknown command: " + type, type, id);

  Envelope env;
  env.type = type;
  env.id = id;
  env.family = is_server_command(type) ? CommandFamily::server : CommandFamily::session;

  if (auto it = body.find("sessionId"); it != body.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return fail(ErrorCode::invalid_command, "Field 'sessionId' must be a non-empty string", type,
                  id);
    env.session_id = it->get<std::string>();
  }
  if (auto it = body.find("idempotencyKey"); it != body.end()) {
    if (!it->is_string())
      return fail(ErrorCode::invalid_command, "Field 'idempotencyKey' must be a string", type, id);
    env.idempotency_key = it->get<std::string>();
  }
  if (auto it = body.find("dependsOn"); it != body.end()) {
    bool ok = it->is_array();
    if (ok)
      for (const auto& d : *it) ok = ok && d.is_string();
    if (!ok)
      return fail(ErrorCode::invalid_command, "Field 'dependsOn' must be an array of strings", type,
                  id);
    if (it->size() > kMaxDependencies)
      return fail(ErrorCode::invalid_command,
                  "Field 'dependsOn' may name at most " + std::to_string(kMaxDependencies) +
                      " commands",
                  type, id);
  }
  if (auto it = body.find("ifSessionVersion"); it != body.end()) {
    if (!it->is_number_integer())
      return fail(ErrorCode::invalid_command, "Field 'ifSessionVersion' must be an integer", type,
                  id);
  }
  if (!env.session_id && (env.family == CommandFamily::session || needs_session_id(type)))
    return fail(ErrorCode::invalid_command, "Missing field 'sessionId' for " + type, type, id);

  env.body = std::move(body);
  return ParseResult{std::move(env), {}};
}

nlohmann::json to_agent_command(const Envelope& envelope, std::string_view agent_id) {
  nlohmann::json cmd = envelope.body;
  for (const char* key : {"sessionId", "idempotencyKey", "dependsOn", "ifSessionVersion"})
    cmd.erase(key);
  cmd["id"] = agent_id;
  if (envelope.type == "switch_session_file") cmd["type"] = "switch_session";
  return cmd;
}

}  // namespace pi_server::protocol
