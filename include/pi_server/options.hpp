#pragma once
// Everything the daemon can be told on its command line (docs/configuration.md lists each
// flag with its default). Plain values; src/main.cpp fills them from flags or a config file.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pi_server {

// How one session's agent process is started.
struct AgentOptions {
  // argv prefix (already split on spaces); the daemon appends --mode rpc and the session's
  // own flags. Default: the pinned pi installed by scripts/setup.
  std::vector<std::string> command;
  // NAME=VALUE pairs added to the allow-listed environment (later entries win).
  std::vector<std::string> extra_env;
  // "provider/id" used when create_session names no model; empty lets pi choose.
  std::string default_model;
  // Longest stdout line accepted from an agent. pi's message_end/turn_end/agent_end carry
  // the whole answer, so tens of MB are normal; longer lines are dropped with a log line.
  std::size_t max_line_bytes = 256u << 20;
  // Graceful stop: close stdin, wait this long, SIGTERM the process group, wait
  // term_grace, then SIGKILL.
  std::chrono::milliseconds eof_grace{1500};
  std::chrono::milliseconds term_grace{3000};
  // Agent stderr lines logged per second per session (burst of 4x); the rest is counted.
  double stderr_lines_per_second = 20;
};

// Limits for one client connection.
struct ConnectionLimits {
  // Largest inbound WebSocket message or stdio line. A WebSocket message over it closes
  // the connection with 1009; a longer stdio line is answered with payload_too_large.
  std::size_t max_frame_bytes = 16u << 20;
  // Queued outbound bytes above which session events (never responses) are dropped for
  // this consumer, which later gets events_dropped.
  std::size_t high_water_bytes = 64u << 20;
  // Queued outbound bytes above which the connection is closed (a stuck consumer).
  std::size_t hard_cap_bytes = 512u << 20;
  // WebSocket ping after this much silence; no answer within the same time closes.
  std::chrono::seconds heartbeat{30};
};

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 3141;
  bool listen = true;
  bool stdio = false;
  std::filesystem::path state_dir;
  std::size_t max_sessions = 256;
  std::size_t max_connections = 1024;
  // Serve the offline demo model and point sessions without a model at it.
  bool demo_model = true;
  // SIGTERM/SIGINT or stdin EOF (stdio only): time allowed for in-flight work.
  std::chrono::milliseconds drain_timeout{10000};
  ConnectionLimits connection;
  AgentOptions agent;
};

}  // namespace pi_server
