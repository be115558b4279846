#include "protocol/envelope.hpp"

#include <algorithm>

#include "protocol/json_scan.hpp"

namespace pi_server::protocol {
namespace {

ParseResult fail(ErrorCode code, std::string message, std::optional<std::string> type = {},
                 std::optional<std::string> id = {}) {
  return EnvelopeError{code, std::move(message), std::move(type), std::move(id)};
}

bool has_type(const nlohmann::json& value, FieldType type) {
  switch (type) {
    case FieldType::string: return value.is_string();
    case FieldType::boolean: return value.is_boolean();
    case FieldType::integer: return value.is_number_integer();
    case FieldType::unsigned_integer: return value.is_number_unsigned();
    case FieldType::array: return value.is_array();
    case FieldType::object: return value.is_object();
  }
  return false;
}

}  // namespace

std::string_view command_label(std::string_view type) {
  const CommandSpec* spec = find_command(type);
  return spec ? spec->name : std::string_view("other");
}

Status check_fields(const CommandSpec& spec, const nlohmann::json& body) {
  for (const FieldSpec& field : spec.fields) {
    auto it = body.find(field.name);
    if (it == body.end()) {
      if (field.required)
        return Status::error(ErrorCode::invalid_command,
                             "Missing field '" + std::string(field.name) + "' for " +
                                 std::string(spec.name));
      continue;
    }
    if (!has_type(*it, field.type))
      return Status::error(ErrorCode::invalid_command, "Field '" + std::string(field.name) +
                                                           "' must be " +
                                                           std::string(to_string(field.type)));
  }
  return Status::ok();
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
  // A NUL byte can appear nowhere in JSON text (not even escaped-free inside a string), and
  // the parser would stop at it and accept what came before.
  if (text.find('\0') != std::string_view::npos) return fail(ErrorCode::invalid_command, "Malformed JSON");
  nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return fail(ErrorCode::invalid_command, "Malformed JSON");
  if (!body.is_object()) return fail(ErrorCode::invalid_command, "A command must be a JSON object");

  // Read `id` first so every later error can echo it.
  auto too_long = [](const std::string& field) {
    return "Field '" + field + "' is longer than " + std::to_string(kMaxIdBytes) + " bytes";
  };
  std::optional<std::string> id;
  if (auto it = body.find("id"); it != body.end()) {
    if (!it->is_string()) return fail(ErrorCode::invalid_command, "Field 'id' must be a string");
    // Not echoed: the answer must not carry the oversize id back.
    if (it->get_ref<const std::string&>().size() > kMaxIdBytes)
      return fail(ErrorCode::invalid_command, too_long("id"));
    id = it->get<std::string>();
  }
  auto type_it = body.find("type");
  if (type_it == body.end())
    return fail(ErrorCode::invalid_command, "Missing field 'type'", std::nullopt, id);
  if (!type_it->is_string() || type_it->get_ref<const std::string&>().empty())
    return fail(ErrorCode::invalid_command, "Field 'type' must be a non-empty string", std::nullopt,
                id);
  if (type_it->get_ref<const std::string&>().size() > kMaxIdBytes)
    return fail(ErrorCode::invalid_command, too_long("type"), std::nullopt, id);
  std::string type = type_it->get<std::string>();
  if (type == "response" || type == "event")
    return fail(ErrorCode::unknown_command, "Unknown command: " + type, type, id);

  Envelope env;
  env.type = type;
  env.id = id;
  const CommandSpec* known = find_command(type);
  env.spec = known ? known : &unknown_session_command(type);

  if (auto it = body.find("sessionId"); it != body.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return fail(ErrorCode::invalid_command, "Field 'sessionId' must be a non-empty string", type,
                  id);
    if (it->get_ref<const std::string&>().size() > kMaxIdBytes)
      return fail(ErrorCode::invalid_command, too_long("sessionId"), type, id);
    env.session_id = it->get<std::string>();
  }
  if (auto it = body.find("idempotencyKey"); it != body.end()) {
    if (!it->is_string())
      return fail(ErrorCode::invalid_command, "Field 'idempotencyKey' must be a string", type, id);
    if (it->get_ref<const std::string&>().size() > kMaxIdBytes)
      return fail(ErrorCode::invalid_command, too_long("idempotencyKey"), type, id);
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
    for (const auto& d : *it) {
      const auto& dep = d.get_ref<const std::string&>();
      if (dep.size() > kMaxIdBytes) return fail(ErrorCode::invalid_command, too_long("dependsOn"), type, id);
      if (std::find(env.depends_on.begin(), env.depends_on.end(), dep) == env.depends_on.end())
        env.depends_on.push_back(dep);
    }
  }
  if (auto it = body.find("ifSessionVersion"); it != body.end()) {
    if (!it->is_number_integer())
      return fail(ErrorCode::invalid_command, "Field 'ifSessionVersion' must be an integer", type,
                  id);
    env.if_session_version = it->get<std::int64_t>();
  }
  if (!env.session_id && env.spec->needs_session) {
    // Without a session, a type the table does not know cannot be relayed anywhere.
    if (!known) return fail(ErrorCode::unknown_command, "Unknown command: " + type, type, id);
    return fail(ErrorCode::invalid_command, "Missing field 'sessionId' for " + type, type, id);
  }
  if (auto checked = check_fields(*env.spec, body); !checked)
    return fail(ErrorCode::invalid_command, checked.message(), type, id);

  env.body = std::move(body);
  return env;
}

nlohmann::json to_agent_command(const Envelope& envelope, std::string_view agent_id) {
  nlohmann::json cmd = envelope.body;
  for (const char* key : {"sessionId", "idempotencyKey", "dependsOn", "ifSessionVersion"})
    cmd.erase(key);
  cmd["id"] = agent_id;
  if (!envelope.spec->agent_type.empty()) cmd["type"] = envelope.spec->agent_type;
  return cmd;
}

}  // namespace pi_server::protocol
