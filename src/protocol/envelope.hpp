#pragma once
// Client command envelopes (DESIGN §2): parse one inbound message, check the envelope
// fields' types, and say which command family it belongs to. Parsing never throws.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "pi_server/error_code.hpp"

namespace pi_server::protocol {

// Most ids one command may name in dependsOn.
inline constexpr std::size_t kMaxDependencies = 32;

// Commands the daemon executes itself (the "server lane").
enum class CommandFamily { server, session };

struct Envelope {
  std::string type;
  std::optional<std::string> id;
  std::optional<std::string> session_id;
  std::optional<std::string> idempotency_key;
  CommandFamily family = CommandFamily::session;
  // The whole command object as received (envelope fields included).
  nlohmann::json body;
};

struct EnvelopeError {
  ErrorCode code;
  std::string message;
  // What the response may echo: the request's `type` and `id`, if they could be read.
  std::optional<std::string> type;
  std::optional<std::string> id;
};

// Parses and validates one command. On error, says what to answer.
// Server commands: create_session, delete_session, list_sessions, switch_session,
// unsubscribe, get_metrics, health_check. Everything else with a string `type` is a
// session command and needs `sessionId`.
struct ParseResult {
  std::optional<Envelope> envelope;
  EnvelopeError error{ErrorCode::invalid_command, {}, {}, {}};
  explicit operator bool() const { return envelope.has_value(); }
};
ParseResult parse_envelope(std::string_view text);

// The command name as a metrics label: known server and pi commands keep their name, any
// other type is "other" (label values come from a closed set).
std::string_view command_label(std::string_view type);

// True for the commands the daemon answers itself.
bool is_server_command(std::string_view type);

// The agent-bound command for a session command: the client's object without the envelope
// fields (sessionId, idempotencyKey, dependsOn, ifSessionVersion), with `id` replaced by
// `agent_id`, and switch_session_file renamed to pi's switch_session.
nlohmann::json to_agent_command(const Envelope& envelope, std::string_view agent_id);

}  // namespace pi_server::protocol
