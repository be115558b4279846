#pragma once
// The closed list of machine-readable error codes a response can carry (DESIGN §2).
// docs/protocol.md lists every one; tests/unit/protocol/error_code_test.cpp checks that.
#include <optional>
#include <string_view>

namespace pi_server {

enum class ErrorCode {
  invalid_command,
  unknown_command,
  session_not_found,
  session_exists,
  limit_reached,
  rate_limited,
  circuit_open,
  conflict,
  dependency_failed,
  version_mismatch,
  timeout,
  unauthorized,
  forbidden,
  shutting_down,
  agent_exited,
  payload_too_large,
  not_pending,
  unsupported,
  outcome_unknown,
};

// Every code, in declaration order (for tests and docs checks).
inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::invalid_command,   ErrorCode::unknown_command, ErrorCode::session_not_found,
    ErrorCode::session_exists,    ErrorCode::limit_reached,   ErrorCode::rate_limited,
    ErrorCode::circuit_open,      ErrorCode::conflict,        ErrorCode::dependency_failed,
    ErrorCode::version_mismatch,  ErrorCode::timeout,         ErrorCode::unauthorized,
    ErrorCode::forbidden,         ErrorCode::shutting_down,   ErrorCode::agent_exited,
    ErrorCode::payload_too_large, ErrorCode::not_pending,     ErrorCode::unsupported,
    ErrorCode::outcome_unknown,
};

// The wire spelling of `code`, e.g. "session_not_found".
std::string_view to_string(ErrorCode code);

// Inverse of to_string; nullopt for a string that is not a code.
std::optional<ErrorCode> error_code_from_string(std::string_view text);

}  // namespace pi_server
