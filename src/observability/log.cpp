#include "observability/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>


namespace pi_server::log {
namespace {

struct State {
  std::shared_ptr<spdlog::logger> logger;
  Level level = Level::info;
  Format format = Format::json;
};

State& state() {
  static State s;
  return s;
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

void init(Level level, Format format) {
  auto& s = state();
  if (!s.logger) {
    // Single-threaded sink: the whole daemon runs on one thread.
    s.logger = std::make_shared<spdlog::logger>("pi-server",
                                                std::make_shared<spdlog::sinks::stderr_sink_st>());
    s.logger->set_pattern("%v");
    s.logger->set_level(spdlog::level::trace);
    s.logger->flush_on(spdlog::level::trace);
  }
  s.level = level;
  s.format = format;
}

bool enabled(Level level) { return level >= state().level; }

void write(Level level, std::string_view msg, const nlohmann::json& fields) {
  auto& s = state();
  if (!s.logger) init(Level::info, Format::json);
  std::string line;
  if (s.format == Format::json) {
    // ordered: ts, level, msg first, so a person can read the line.
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["ts"] = timestamp();
    j["level"] = level_name(level);
    j["msg"] = msg;
    if (fields.is_object())
      for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
    line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  } else {
    line = timestamp() + " " + std::string(level_name(level)) + " " + std::string(msg);
    if (fields.is_object() && !fields.empty())
      line += " " + fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  s.logger->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

bool parse_level(std::string_view text, Level& out) {
  for (Level l : {Level::trace, Level::debug, Level::info, Level::warn, Level::error}) {
    if (level_name(l) == text) {
      out = l;
      return true;
    }
  }
  return false;
}

}  // namespace pi_server::log
