#pragma once
// Outbound frames: responses, session event envelopes and server events (DESIGN §2, §9).
// Each builder returns the serialized text once; callers wrap it in a shared Frame.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "pi_server/error_code.hpp"

namespace pi_server::protocol {

// The parts of one response. `id` is echoed only when the request carried one.
struct Response {
  std::string command;
  std::optional<std::string> id;
  bool success = true;
  std::optional<nlohmann::json> data;
  std::optional<std::string> error;
  std::optional<ErrorCode> code;
  std::optional<std::string> session_id;
  std::optional<std::uint64_t> session_version;
  bool replayed = false;   // a stored outcome sent again for a duplicate
  bool timed_out = false;  // the command's timeout fired (code timeout)
};

Response success_response(std::string command, std::optional<std::string> id,
                          std::optional<nlohmann::json> data = std::nullopt);
Response error_response(std::string command, std::optional<std::string> id, ErrorCode code,
                        std::string message);

// Serializes a response; invalid UTF-8 from an agent is replaced, never thrown on.
std::string serialize(const Response& response);

// {"type":T,"data":{...}} for server events (server_ready, session_created, agent_exited...).
std::string server_event(std::string_view type, const nlohmann::json& data);

// JSON-escaped string literal, quotes included ("a\"b").
std::string json_quote(std::string_view text);

// Builds {"type":"event","sessionId":S,"seq":N,"event":<raw agent line>} without parsing or
// re-serializing the agent's bytes. `quoted_session_id` is json_quote(sessionId), cached by
// the session.
std::string wrap_event(std::string_view quoted_session_id, std::uint64_t seq,
                       std::string_view raw_event);

// dump() that never throws on invalid UTF-8.
std::string dump(const nlohmann::json& value);

}  // namespace pi_server::protocol
