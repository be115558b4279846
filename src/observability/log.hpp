#pragma once
// Structured logs on stderr (stdout belongs to the stdio transport): one JSON object per
// line, {"ts","level","msg",...fields}, where msg is a stable event name tests can grep
// ("listening", "agent_exited"). --log-format text prints "ts level msg fields" instead.
// Never log secrets or prompt/agent text above debug: log sizes, ids and codes.
#include <nlohmann/json.hpp>
#include <string_view>

namespace pi_server::log {

enum class Level { trace, debug, info, warn, error };
enum class Format { json, text };

// Configures the process-wide logger. Call once at start (tests may call it again).
void init(Level level, Format format);
bool enabled(Level level);
void write(Level level, std::string_view msg, const nlohmann::json& fields);

inline void debug(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  if (enabled(Level::debug)) write(Level::debug, msg, fields);
}
inline void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  if (enabled(Level::info)) write(Level::info, msg, fields);
}
inline void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  if (enabled(Level::warn)) write(Level::warn, msg, fields);
}
inline void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
  if (enabled(Level::error)) write(Level::error, msg, fields);
}

// Parses "trace|debug|info|warn|error"; false for anything else.
bool parse_level(std::string_view text, Level& out);

}  // namespace pi_server::log
