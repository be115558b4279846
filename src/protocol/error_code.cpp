#include "pi_server/error_code.hpp"

namespace pi_server {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_command: return "invalid_command";
    case ErrorCode::unknown_command: return "unknown_command";
    case ErrorCode::session_not_found: return "session_not_found";
    case ErrorCode::session_exists: return "session_exists";
    case ErrorCode::limit_reached: return "limit_reached";
    case ErrorCode::rate_limited: return "rate_limited";
    case ErrorCode::circuit_open: return "circuit_open";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::dependency_failed: return "dependency_failed";
    case ErrorCode::version_mismatch: return "version_mismatch";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::unauthorized: return "unauthorized";
    case ErrorCode::forbidden: return "forbidden";
    case ErrorCode::shutting_down: return "shutting_down";
    case ErrorCode::agent_exited: return "agent_exited";
    case ErrorCode::payload_too_large: return "payload_too_large";
    case ErrorCode::not_pending: return "not_pending";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::outcome_unknown: return "outcome_unknown";
  }
  return "invalid_command";
}

std::optional<ErrorCode> error_code_from_string(std::string_view text) {
  for (ErrorCode code : kAllErrorCodes) {
    if (to_string(code) == text) return code;
  }
  return std::nullopt;
}

}  // namespace pi_server
