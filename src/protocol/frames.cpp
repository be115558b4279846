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

std::string serialize(const Response& r) {
  nlohmann::json j = nlohmann::json::object();
  j["type"] = "response";
  if (r.id) j["id"] = *r.id;
  if (!r.command.empty()) j["command"] = r.command;
  j["success"] = r.success;
  if (r.data) j["data"] = *r.data;
  if (r.error) j["error"] = *r.error;
  if (r.code) j["code"] = std::string(to_string(*r.code));
  if (r.session_id) j["sessionId"] = *r.session_id;
  if (r.session_version) j["sessionVersion"] = *r.session_version;
  return dump(j);
}

std::string server_event(std::string_view type, const nlohmann::json& data) {
  nlohmann::json j = {{"type", type}, {"data", data}};
  return dump(j);
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
