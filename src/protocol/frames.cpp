#include "protocol/frames.hpp"

#include <charconv>

namespace pi_server::protocol {

std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response success_response(std::string command, std::optional<std::string> id,
                          std::optional<nlohmann::json> data) {
  Response r;
  r.command = std::move(command);
  r.id = std::move(id);
  r.data = std::move(data);
  return r;
}

Response error_response(std::string command, std::optional<std::string> id, ErrorCode code,
                        std::string message) {
  Response r;
  r.command = std::move(command);
  r.id = std::move(id);
  r.success = false;
  r.code = code;
  r.error = std::move(message);
  return r;
}

// Written by hand rather than through a json object: the key order stays the documented
// one (type first) and a large `data` (get_messages) is serialized once, never copied.
std::string serialize(const Response& r) {
  std::string out = R"({"type":"response")";
  if (r.id) out.append(R"(,"id":)").append(json_quote(*r.id));
  if (!r.command.empty()) out.append(R"(,"command":)").append(json_quote(r.command));
  out.append(r.success ? R"(,"success":true)" : R"(,"success":false)");
  if (r.data) out.append(R"(,"data":)").append(dump(*r.data));
  if (r.error) out.append(R"(,"error":)").append(json_quote(*r.error));
  if (r.code) out.append(R"(,"code":")").append(to_string(*r.code)).push_back('"');
  if (r.session_id) out.append(R"(,"sessionId":)").append(json_quote(*r.session_id));
  if (r.session_version)
    out.append(R"(,"sessionVersion":)").append(std::to_string(*r.session_version));
  if (r.timed_out) out.append(R"(,"timedOut":true)");
  if (r.replayed) out.append(R"(,"replayed":true)");
  out.push_back('}');
  return out;
}

std::string server_event(std::string_view type, const nlohmann::json& data) {
  std::string out = R"({"type":)";
  out.append(json_quote(type)).append(R"(,"data":)").append(dump(data)).push_back('}');
  return out;
}

std::string json_quote(std::string_view text) {
  return dump(nlohmann::json(std::string(text)));
}

std::string wrap_event(std::string_view quoted_session_id, std::uint64_t seq,
                       std::string_view raw_event) {
  static constexpr std::string_view kHead = R"({"type":"event","sessionId":)";
  static constexpr std::string_view kSeq = R"(,"seq":)";
  static constexpr std::string_view kEvent = R"(,"event":)";
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, seq);
  std::string out;
  out.reserve(kHead.size() + quoted_session_id.size() + kSeq.size() + (end - digits) +
              kEvent.size() + raw_event.size() + 1);
  out.append(kHead).append(quoted_session_id).append(kSeq).append(digits, end).append(kEvent);
  out.append(raw_event).push_back('}');
  return out;
}

}  // namespace pi_server::protocol
