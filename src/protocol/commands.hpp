#pragma once
// The command table: what every known command is (family, lane, timeout class, version
// bump, breaker, field types). Being filled in; see commands.cpp.
#include <string_view>

namespace pi_server::protocol {

// True when a successful answer to `type` changes the session (bumps sessionVersion).
bool bumps_session_version(std::string_view type);

}  // namespace pi_server::protocol
