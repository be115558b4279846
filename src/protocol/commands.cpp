#include "protocol/commands.hpp"

namespace pi_server::protocol {

bool bumps_session_version(std::string_view type) {
  return !(type.starts_with("get_") || type == "export_html");
}

}  // namespace pi_server::protocol
