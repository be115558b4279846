#pragma once
// Log lines about one command. The ids come from the Submission, so every such line carries
// `conn`, `cmd` (the client's command id), `command` (its type) and `session` by
// construction (STYLE §9), and never any payload field: prompt text stays out of the log.
#include <nlohmann/json.hpp>
#include <string_view>

#include "observability/log.hpp"
#include "reliability/command_pipeline.hpp"

namespace pi_server::reliability {

inline nlohmann::json command_fields(const Submission& sub, nlohmann::json fields = nlohmann::json::object()) {
  const auto& env = sub.envelope;
  fields["conn"] = sub.connection_id;
  fields["command"] = env.type;
  if (env.id) fields["cmd"] = *env.id;
  if (env.session_id) fields["session"] = *env.session_id;
  return fields;
}

inline void log_command(log::Level level, std::string_view msg, const Submission& sub,
                        nlohmann::json fields = nlohmann::json::object()) {
  if (log::enabled(level)) log::write(level, msg, command_fields(sub, std::move(fields)));
}

}  // namespace pi_server::reliability
