#pragma once
// The command table: everything the daemon knows about a command, in one row per command
// (commands.cpp). The parser, the pipeline (lane, bypass, timeout), the session (version
// bump), admission (circuit breaker) and metrics (label) all read it; nothing else keeps a
// list of command names. A session command that is not in the table is still relayed to the
// agent (a newer pi needs no daemon change) under the `unknown` row's rules.
//
// Adding a command: one row here, its handler (server commands: ServerCommands in
// src/server/server_commands.cpp, registered by name; a unit test checks every server row
// has one), a test, and its entry in docs/protocol.md.
#include <span>
#include <string_view>

namespace pi_server::protocol {

enum class CommandFamily {
  server,           // the daemon executes it (create_session, list_sessions, ...)
  session_relayed,  // sent to the session's agent, its answer relayed back
  session_daemon,   // names a session, but the daemon answers it (extension_ui_response)
};

enum class LaneRule {
  server,   // the shared "server" lane, in admission order
  session,  // the lane of the session it names (create_session without an id: its own)
  bypass,   // runs at once, outside any lane: it must reach pi while a long command holds
            // the lane (abort during bash, answers to dialogs)
};

enum class TimeoutClass { read, normal, long_running };

// Which circuit breaker guards a command.
enum class BreakerRule {
  none,
  provider,  // reaches the LLM: the session's provider breaker (the verdict comes from the
             // assistant messages the run emits)
  provider_call,  // one LLM call that emits no assistant message (compact): its own
                  // success is the provider's success
  bash,      // the breaker counting bash timeouts
};

enum class FieldType {
  string,
  path,              // a string naming a file or directory: confined to the workspace roots
                     // and replaced by its resolved form before the command runs
                     // (security/path_confinement.hpp); relative to the session's cwd
  session_file,      // a path to a pi session file: confined like `path`, and so is the cwd
                     // its header names (pi moves the agent there when it opens the file)
  boolean,
  integer,           // any JSON integer
  unsigned_integer,  // a non-negative JSON integer
  array,
  object,
};
std::string_view to_string(FieldType type);
// Fields the daemon confines to the workspace roots (path, session_file).
inline bool is_path(FieldType type) {
  return type == FieldType::path || type == FieldType::session_file;
}

// A payload field of a command (the envelope fields id, type, sessionId, idempotencyKey,
// dependsOn and ifSessionVersion are checked for every command by the envelope parser).
struct FieldSpec {
  std::string_view name;
  FieldType type;
  bool required = false;
};

struct CommandSpec {
  std::string_view name;
  CommandFamily family;
  LaneRule lane;
  TimeoutClass timeout;
  bool needs_session;  // `sessionId` is required
  bool bumps_version;  // a success increments sessionVersion (mutating session commands)
  BreakerRule breaker;
  std::span<const FieldSpec> fields;
  // The type the agent knows it by, when it differs (switch_session_file is pi's
  // switch_session; the server's switch_session means subscribe).
  std::string_view agent_type = {};

  bool is_server() const { return family == CommandFamily::server; }
};

// The row of a known command, or nullptr.
const CommandSpec* find_command(std::string_view type);
// The rules for a session command the table does not know (relayed as is): a get_* is a
// read (read timeout, no version bump), anything else mutates (normal timeout, bumps).
const CommandSpec& unknown_session_command(std::string_view type = {});
// Every known command, in table order.
std::span<const CommandSpec> all_commands();

// The spec that governs `type`: its row, or the unknown-session-command rules.
inline const CommandSpec& spec_for(std::string_view type) {
  const CommandSpec* s = find_command(type);
  return s ? *s : unknown_session_command(type);
}

// True when a successful answer to `type` changes the session (bumps sessionVersion).
inline bool bumps_session_version(std::string_view type) { return spec_for(type).bumps_version; }

}  // namespace pi_server::protocol
