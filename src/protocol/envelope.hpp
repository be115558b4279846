#pragma once
// Client command envelopes (DESIGN §2): parse one inbound message, check the envelope
// fields' types, and say which command family it belongs to. Parsing never throws.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include <vector>

#include "pi_server/error_code.hpp"
#include "pi_server/result.hpp"
#include "protocol/commands.hpp"

namespace pi_server::protocol {

// Most ids one command may name in dependsOn.
inline constexpr std::size_t kMaxDependencies = 32;
// Longest id, idempotencyKey, sessionId and dependsOn entry, in bytes: each is kept (in the
// outcome store, in responses) and must not let one command pin megabytes.
inline constexpr std::size_t kMaxIdBytes = 256;

// Payload members bigger than this stay text (see Envelope::raw_members).
inline constexpr std::size_t kRawMemberBytes = 64u << 10;

// A top-level payload member kept as its (minified) JSON text.
struct RawMember {
  std::string key;
  std::string json;
};

struct Envelope {
  std::string type;
  std::optional<std::string> id;
  std::optional<std::string> session_id;
  std::optional<std::string> idempotency_key;
  // dependsOn, deduplicated order kept; ifSessionVersion.
  std::vector<std::string> depends_on;
  std::optional<std::int64_t> if_session_version;
  // What the command is (its row in the command table, or the unknown-command rules).
  const CommandSpec* spec = &unknown_session_command();
  // The command object as received (envelope fields included), except `raw_members`.
  nlohmann::json body;
  // Members of a relayed command bigger than kRawMemberBytes (a pasted file, a large image):
  // kept as text and spliced back into the agent's line, so a 16 MB prompt is never built
  // into a DOM on the event loop. Commands the daemon reads itself have none.
  std::vector<RawMember> raw_members;

  bool is_server_command() const { return spec->is_server(); }
};

struct EnvelopeError {
  ErrorCode code;
  std::string message;
  // What the response may echo: the request's `type` and `id`, if they could be read.
  std::optional<std::string> type;
  std::optional<std::string> id;
};

// Parses and validates one command: the envelope fields, then the payload fields against
// the command's row in the command table (protocol/commands.hpp). A type the table does not
// know is a session command (relayed to the agent) and needs `sessionId`; without one it is
// unknown_command. On error, says what to answer.
using ParseResult = Result<Envelope, EnvelopeError>;
ParseResult parse_envelope(std::string_view text);

// A top-level member that is a plain string of at most kMaxIdBytes, read without parsing the
// document (one structural pass): for answers to messages refused before parsing.
std::optional<std::string> peek_string_member(std::string_view text, std::string_view key);

// Checks `body`'s payload fields against `spec` (types, required ones). The message names
// the field, e.g. "Field 'message' must be a string".
Status check_fields(const CommandSpec& spec, const nlohmann::json& body,
                    const std::vector<RawMember>& raw = {});

// The command name as a metrics label: known server and pi commands keep their name, any
// other type is "other" (label values come from a closed set).
std::string_view command_label(std::string_view type);

// The agent-bound line for a session command: the client's object without the envelope
// fields (sessionId, idempotencyKey, dependsOn, ifSessionVersion), with `id` replaced by
// `agent_id` and the type renamed where the command table says (switch_session_file is
// pi's switch_session); raw members spliced in as they came.
std::string agent_command_line(const Envelope& envelope, std::string_view agent_id);

}  // namespace pi_server::protocol
