#include "protocol/commands.hpp"

#include <array>

namespace pi_server::protocol {
namespace {

using F = FieldType;
using enum CommandFamily;
using enum TimeoutClass;
constexpr LaneRule kServerLane = LaneRule::server;
constexpr LaneRule kSessionLane = LaneRule::session;
constexpr LaneRule kBypass = LaneRule::bypass;
constexpr BreakerRule kNoBreaker = BreakerRule::none;
constexpr BreakerRule kProvider = BreakerRule::provider;
constexpr BreakerRule kProviderCall = BreakerRule::provider_call;
constexpr BreakerRule kBash = BreakerRule::bash;
constexpr bool kNeedsSession = true, kNoSession = false;
constexpr bool kBumps = true, kReadOnly = false;

// Payload fields. Required where pi (or the daemon) cannot do anything sensible without
// them: pi itself would answer with a bare JavaScript TypeError, or run the string
// "undefined" as a bash command.
constexpr FieldSpec kCreateSession[] = {
    {"cwd", F::path}, {"model", F::string}, {"thinkingLevel", F::string}, {"name", F::string}};
constexpr FieldSpec kSwitchSession[] = {{"afterSeq", F::unsigned_integer}};
constexpr FieldSpec kDeleteSession[] = {{"purge", F::boolean}};
constexpr FieldSpec kCommandHistory[] = {{"sessionIdFilter", F::string},
                                         {"commandId", F::string},
                                         {"fromTimestamp", F::integer},
                                         {"toTimestamp", F::integer},
                                         {"limit", F::integer}};
constexpr FieldSpec kLifecycleEvents[] = {{"enabled", F::boolean, true}};
constexpr FieldSpec kPrompt[] = {
    {"message", F::string, true}, {"images", F::array}, {"streamingBehavior", F::string}};
constexpr FieldSpec kMessage[] = {{"message", F::string, true}, {"images", F::array}};
constexpr FieldSpec kNewSession[] = {{"parentSession", F::path}};
constexpr FieldSpec kSetModel[] = {{"provider", F::string, true}, {"modelId", F::string, true}};
constexpr FieldSpec kLevel[] = {{"level", F::string, true}};
constexpr FieldSpec kMode[] = {{"mode", F::string, true}};
constexpr FieldSpec kCompact[] = {{"customInstructions", F::string}};
constexpr FieldSpec kEnabled[] = {{"enabled", F::boolean, true}};
constexpr FieldSpec kBashFields[] = {{"command", F::string, true},
                                     {"excludeFromContext", F::boolean}};
constexpr FieldSpec kExportHtml[] = {{"outputPath", F::path}};
constexpr FieldSpec kSwitchFile[] = {{"sessionPath", F::session_file, true}};
constexpr FieldSpec kFork[] = {{"entryId", F::string, true}};
constexpr FieldSpec kGetEntries[] = {{"since", F::string}};
constexpr FieldSpec kSessionName[] = {{"name", F::string, true}};
// pi's own shape ({id, value | confirmed | cancelled}, the dialog id also as uiRequestId)
// and protocol 1.x's ({requestId, response: {method, value | confirmed | ...}}).
constexpr FieldSpec kUiResponse[] = {{"uiRequestId", F::string}, {"value", F::string},
                                     {"confirmed", F::boolean},   {"cancelled", F::boolean},
                                     {"requestId", F::string},    {"response", F::object}};
constexpr FieldSpec kNavigateTree[] = {{"targetId", F::string, true}, {"options", F::object}};

// name, family, lane, timeout, sessionId required, bumps version, breaker, fields
constexpr CommandSpec kCommands[] = {
    // ---- server commands (the daemon executes them)
    {"create_session", server, kSessionLane, long_running, kNoSession, kReadOnly, kNoBreaker, kCreateSession},
    {"delete_session", server, kSessionLane, long_running, kNeedsSession, kReadOnly, kNoBreaker, kDeleteSession},
    {"list_sessions", server, kServerLane, read, kNoSession, kReadOnly, kNoBreaker, {}},
    // persistence (DESIGN §11): stored sessions that are not running, starting one again,
    // and what this start recovered
    {"list_stored_sessions", server, kServerLane, read, kNoSession, kReadOnly, kNoBreaker, {}},
    {"load_session", server, kSessionLane, long_running, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"get_startup_recovery", server, kServerLane, read, kNoSession, kReadOnly, kNoBreaker, {}},
    {"switch_session", server, kServerLane, normal, kNeedsSession, kReadOnly, kNoBreaker, kSwitchSession},
    {"unsubscribe", server, kServerLane, normal, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"get_metrics", server, kServerLane, read, kNoSession, kReadOnly, kNoBreaker, {}},
    {"health_check", server, kServerLane, read, kNoSession, kReadOnly, kNoBreaker, {}},
    {"get_command_history", server, kServerLane, read, kNoSession, kReadOnly, kNoBreaker, kCommandHistory},
    {"set_lifecycle_events", server, kServerLane, normal, kNoSession, kReadOnly, kNoBreaker, kLifecycleEvents},
    // ---- pi RPC commands (relayed to the session's agent)
    {"prompt", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kProvider, kPrompt},
    {"steer", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kProvider, kMessage},
    {"follow_up", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kProvider, kMessage},
    {"abort", session_relayed, kBypass, normal, kNeedsSession, kBumps, kNoBreaker, {}},
    {"clear_queue", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, {}},
    {"new_session", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kNoBreaker, kNewSession},
    {"get_state", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"set_model", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kSetModel},
    {"cycle_model", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, {}},
    {"get_available_models", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"set_thinking_level", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kLevel},
    {"cycle_thinking_level", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, {}},
    {"get_available_thinking_levels", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"set_steering_mode", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kMode},
    {"set_follow_up_mode", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kMode},
    {"compact", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kProviderCall, kCompact},
    {"set_auto_compaction", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kEnabled},
    {"set_auto_retry", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kEnabled},
    {"abort_retry", session_relayed, kBypass, normal, kNeedsSession, kBumps, kNoBreaker, {}},
    {"bash", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kBash, kBashFields},
    {"abort_bash", session_relayed, kBypass, normal, kNeedsSession, kBumps, kNoBreaker, {}},
    {"get_session_stats", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    // export_html writes a file but leaves the session as it was.
    {"export_html", session_relayed, kSessionLane, long_running, kNeedsSession, kReadOnly, kNoBreaker, kExportHtml},
    {"switch_session_file", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kNoBreaker, kSwitchFile, "switch_session"},
    {"fork", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kNoBreaker, kFork},
    {"clone", session_relayed, kSessionLane, long_running, kNeedsSession, kBumps, kNoBreaker, {}},
    {"get_fork_messages", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"get_entries", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, kGetEntries},
    {"get_tree", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"get_last_assistant_text", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"set_session_name", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, kSessionName},
    {"get_messages", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"get_commands", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    // ---- session commands the daemon answers (SessionCommands): itself (it tracks the
    // session's dialogs and files), or from another pi command (agent_type)
    {"extension_ui_response", session_daemon, kBypass, normal, kNeedsSession, kReadOnly, kNoBreaker, kUiResponse},
    {"get_context_usage", session_daemon, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}, "get_session_stats"},
    {"get_skills", session_daemon, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}, "get_commands"},
    {"list_session_files", session_daemon, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}, "get_state"},
    // pi's abort also stops a compaction (AgentSession.abort calls abortCompaction); sent only
    // while one runs, so it cannot abort anything else.
    {"abort_compaction", session_daemon, kBypass, normal, kNeedsSession, kReadOnly, kNoBreaker, {}, "abort"},
    // Protocol 1.x commands pi 0.87.1 has no RPC for: refused with `unsupported`.
    {"get_tools", session_daemon, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}},
    {"navigate_tree", session_daemon, kSessionLane, long_running, kNeedsSession, kReadOnly, kNoBreaker, kNavigateTree},
};

// A newer pi's commands: relayed as they are. One named get_* is taken to be a read (read
// timeout, no version bump), as every get_* pi has today is.
constexpr CommandSpec kUnknownSessionCommand = {
    "", session_relayed, kSessionLane, normal, kNeedsSession, kBumps, kNoBreaker, {}};
constexpr CommandSpec kUnknownSessionRead = {
    "", session_relayed, kSessionLane, read, kNeedsSession, kReadOnly, kNoBreaker, {}};

}  // namespace

std::string_view to_string(FieldType type) {
  switch (type) {
    case F::string:
    case F::path:
    case F::session_file: return "a string";
    case F::boolean: return "a boolean";
    case F::integer: return "an integer";
    case F::unsigned_integer: return "a non-negative integer";
    case F::array: return "an array";
    case F::object: return "an object";
  }
  return "?";
}

const CommandSpec* find_command(std::string_view type) {
  // ~45 rows, looked up once per command: a linear scan over string_views is as fast as a
  // hash lookup here and keeps the table a plain constant.
  for (const auto& spec : kCommands)
    if (spec.name == type) return &spec;
  return nullptr;
}

const CommandSpec& unknown_session_command(std::string_view type) {
  return type.starts_with("get_") ? kUnknownSessionRead : kUnknownSessionCommand;
}

std::span<const CommandSpec> all_commands() { return kCommands; }

}  // namespace pi_server::protocol
