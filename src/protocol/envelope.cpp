#include "protocol/envelope.hpp"

#include <algorithm>

#include <simdjson.h>

#include "protocol/frames.hpp"
#include "protocol/json_scan.hpp"

namespace pi_server::protocol {
namespace {

ParseResult fail(ErrorCode code, std::string message, std::optional<std::string> type = {},
                 std::optional<std::string> id = {}) {
  return EnvelopeError{code, std::move(message), std::move(type), std::move(id)};
}

// The type of a JSON value from its (valid, minified) text.
bool raw_has_type(std::string_view json, FieldType type) {
  char c = json.empty() ? '\0' : json.front();
  switch (type) {
    case FieldType::string:
    case FieldType::path:
    case FieldType::session_file: return c == '"';
    case FieldType::boolean: return c == 't' || c == 'f';
    case FieldType::integer:
    case FieldType::unsigned_integer: return false;  // numbers are never big enough to be raw
    case FieldType::array: return c == '[';
    case FieldType::object: return c == '{';
  }
  return false;
}

// The reader: simdjson's DOM parser validates the whole text (UTF-8, syntax, the depth
// limit) at several hundred MB/s without recursion, reused across commands. Small members
// become the nlohmann `body`; a member bigger than kRawMemberBytes stays text.
simdjson::dom::parser& reader() {
  static thread_local simdjson::dom::parser parser = [] {
    simdjson::dom::parser p;
    // Depth as counted here: the command object itself is level 1.
    if (p.allocate(1 << 16, kMaxJsonDepth) != simdjson::SUCCESS) std::abort();
    return p;
  }();
  return parser;
}

nlohmann::json to_nlohmann(simdjson::dom::element e) {
  // Recursion is bounded by the parser's depth limit (kMaxJsonDepth). The document is
  // already validated: each typed read below succeeds for the element's own type.
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
      nlohmann::json out = nlohmann::json::array();
      simdjson::dom::array array;
      if (e.get(array) == simdjson::SUCCESS)
        for (simdjson::dom::element v : array) out.push_back(to_nlohmann(v));
      return out;
    }
    case simdjson::dom::element_type::OBJECT: {
      nlohmann::json out = nlohmann::json::object();
      simdjson::dom::object object;
      if (e.get(object) == simdjson::SUCCESS)
        for (simdjson::dom::key_value_pair member : object)
          out[std::string(member.key)] = to_nlohmann(member.value);
      return out;
    }
    case simdjson::dom::element_type::INT64: {
      // nlohmann reads a non-negative integer as unsigned; the field checks rely on that.
      auto v = std::int64_t(e);
      return v >= 0 ? nlohmann::json(static_cast<std::uint64_t>(v)) : nlohmann::json(v);
    }
    case simdjson::dom::element_type::UINT64: return std::uint64_t(e);
    case simdjson::dom::element_type::DOUBLE: return double(e);
    case simdjson::dom::element_type::STRING: return std::string(std::string_view(e));
    case simdjson::dom::element_type::BOOL: return bool(e);
    case simdjson::dom::element_type::NULL_VALUE: return nullptr;
  }
  return nullptr;
}

// A top-level plain-string member, read without a DOM (for refusals of a document that could
// not be parsed, which may still echo its id and type).
}  // namespace

std::optional<std::string> peek_string_member(std::string_view text, std::string_view key) {
  std::optional<std::string> out;
  scan_object(text, [&](std::string_view k, std::string_view v) {
    if (k != key) return true;
    if (auto s = simple_string(v); s && s->size() <= kMaxIdBytes) out = std::string(*s);
    return false;
  });
  return out;
}

namespace {

struct Document {
  nlohmann::json body;
  std::vector<RawMember> raw;
};

Result<Document, EnvelopeError> read_document(std::string_view text) {
  auto& parser = reader();
  simdjson::dom::element root;
  auto error = parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(root);
  if (error == simdjson::DEPTH_ERROR)
    return EnvelopeError{ErrorCode::invalid_command,
                         "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                         peek_string_member(text, "type"), peek_string_member(text, "id")};
  if (error) return EnvelopeError{ErrorCode::invalid_command, "Malformed JSON", {}, {}};
  simdjson::dom::object object;
  if (root.get_object().get(object))
    return EnvelopeError{ErrorCode::invalid_command, "A command must be a JSON object", {}, {}};
  Document doc;
  doc.body = nlohmann::json::object();
  for (auto [key, value] : object) {
    std::string name(key);
    std::string text_of_value;
    bool big = false;
    // Envelope fields are always read (and bounded) from the body.
    bool envelope_field = name == "id" || name == "type" || name == "sessionId" ||
                          name == "idempotencyKey" || name == "dependsOn" ||
                          name == "ifSessionVersion";
    if (!envelope_field) switch (value.type()) {
      case simdjson::dom::element_type::STRING:
        big = std::string_view(value).size() > kRawMemberBytes;
        break;
      case simdjson::dom::element_type::ARRAY:
      case simdjson::dom::element_type::OBJECT:
        text_of_value = simdjson::minify(value);
        big = text_of_value.size() > kRawMemberBytes;
        break;
      default: break;
    }
    // A later duplicate key wins, as with nlohmann's parser.
    std::erase_if(doc.raw, [&](const RawMember& m) { return m.key == name; });
    if (big) {
      doc.body.erase(name);
      doc.raw.push_back({name, text_of_value.empty() ? simdjson::minify(value) : std::move(text_of_value)});
    } else {
      doc.body[name] = to_nlohmann(value);
    }
  }
  return doc;
}

bool has_type(const nlohmann::json& value, FieldType type) {
  switch (type) {
    case FieldType::string:
    case FieldType::path:
    case FieldType::session_file: return value.is_string();
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

Status check_fields(const CommandSpec& spec, const nlohmann::json& body,
                    const std::vector<RawMember>& raw) {
  for (const FieldSpec& field : spec.fields) {
    auto it = body.find(field.name);
    if (it == body.end()) {
      auto r = std::find_if(raw.begin(), raw.end(),
                            [&](const RawMember& m) { return m.key == field.name; });
      if (r != raw.end()) {
        if (!raw_has_type(r->json, field.type))
          return Status::error(ErrorCode::invalid_command, "Field '" + std::string(field.name) +
                                                               "' must be " +
                                                               std::string(to_string(field.type)));
        continue;
      }
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
  // A NUL byte can appear nowhere in JSON text (not even inside a string).
  if (text.find('\0') != std::string_view::npos) return fail(ErrorCode::invalid_command, "Malformed JSON");
  auto document = read_document(text);
  if (!document) return document.failure();
  nlohmann::json body = std::move(document->body);
  std::vector<RawMember> raw = std::move(document->raw);

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
  if (!raw.empty() && env.spec->family != CommandFamily::session_relayed) {
    // Commands the daemon reads itself get every field in `body` (rare: such big fields are
    // not expected there; the frame limit bounds the cost).
    for (auto& member : raw) body[member.key] = nlohmann::json::parse(member.json);
    raw.clear();
  }
  if (!env.session_id && env.spec->needs_session) {
    // Without a session, a type the table does not know cannot be relayed anywhere.
    if (!known) return fail(ErrorCode::unknown_command, "Unknown command: " + type, type, id);
    return fail(ErrorCode::invalid_command, "Missing field 'sessionId' for " + type, type, id);
  }
  if (auto checked = check_fields(*env.spec, body, raw); !checked)
    return fail(ErrorCode::invalid_command, checked.message(), type, id);

  env.body = std::move(body);
  env.raw_members = std::move(raw);
  return env;
}

std::string agent_command_line(const Envelope& envelope, std::string_view agent_id) {
  nlohmann::json cmd = envelope.body;
  for (const char* key : {"sessionId", "idempotencyKey", "dependsOn", "ifSessionVersion"})
    cmd.erase(key);
  cmd["id"] = agent_id;
  if (!envelope.spec->agent_type.empty()) cmd["type"] = envelope.spec->agent_type;
  std::string line = dump(cmd);
  // Big members go back in as the (minified) text they came as: no DOM was ever built.
  if (!envelope.raw_members.empty()) {
    line.pop_back();  // the closing brace
    std::size_t extra = 0;
    for (const auto& m : envelope.raw_members) extra += m.key.size() + m.json.size() + 4;
    line.reserve(line.size() + extra + 1);
    for (const auto& m : envelope.raw_members)
      line.append(",").append(json_quote(m.key)).append(":").append(m.json);
    line.push_back('}');
  }
  return line;
}

}  // namespace pi_server::protocol
