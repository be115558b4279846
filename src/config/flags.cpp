// The command line: every flag, its default and its check (CLI11), into a CommandLine.
#include "config/flags.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <iostream>

#include "agent/agent_launch.hpp"

namespace pi_server::config {
namespace fs = std::filesystem;

namespace {

constexpr int kExitBadUsage = 2;

fs::path default_state_dir() {
  if (const char* d = std::getenv("STATE_DIRECTORY"); d && *d) return d;
  if (const char* d = std::getenv("XDG_STATE_HOME"); d && *d) return fs::path(d) / "pi-server";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : "/tmp") / ".local" / "state" / "pi-server";
}

// "HOST:PORT" or "[V6]:PORT".
bool parse_listen(const std::string& text, std::string& host, std::uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long p = std::stoul(port_text);
  if (p > 65535) return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

int fail_usage(const std::string& why) {
  std::cerr << "pi-server: " << why << "\n";
  return kExitBadUsage;
}

}  // namespace

Result<CommandLine, int> parse_command_line(int argc, char** argv) {
  CommandLine out;
  ServerOptions& options = out.options;
  std::string listen = "127.0.0.1:3141";
  std::string agent_command = PI_SERVER_DEFAULT_AGENT;
  std::string state_dir;
  std::string log_level = "info";
  std::string log_format = "json";
  bool no_listen = false;
  bool no_demo_model = false;
  bool force_demo_model = false;
  std::uint64_t drain_timeout_ms = 10000;
  std::uint64_t heartbeat_seconds = 30;

  CLI::App app{"pi-server: serves many pi coding-agent sessions over WebSocket and stdio"};
  app.set_version_flag("--version", std::string("pi-server ") + PI_SERVER_VERSION);
  app.set_config("--config", "", "Read flags from a TOML/INI file (keys are the long flag names)");
  app.add_option("--listen", listen, "HOST:PORT for WebSocket and HTTP (port 0 picks a free one)")
      ->capture_default_str();
  app.add_flag("--no-listen", no_listen, "Do not open the TCP listener (stdio only)");
  app.add_flag("--stdio", options.stdio, "Serve the JSON-lines protocol on stdin/stdout");
  app.add_option("--allow-origin", options.connection.allowed_origins,
                 "Browser Origin allowed to open a WebSocket (repeatable); others get 403");
  app.add_option("--agent-command", agent_command,
                 "Agent argv prefix, split on spaces; --mode rpc and session flags are appended")
      ->capture_default_str();
  app.add_option("--agent-env", options.agent.extra_env,
                 "NAME=VALUE for the agent's environment, or NAME to pass the daemon's value");
  app.add_option("--default-model", options.agent.default_model,
                 "provider/id for sessions that name no model (default: the offline demo model)");
  app.add_flag("--no-demo-model", no_demo_model,
               "Never use the offline demo model (a session without a configured model fails)");
  app.add_flag("--demo-model", force_demo_model,
               "Use the offline demo model even when a pi model is configured");
  app.add_option("--state-dir", state_dir, "State directory (sessions, pi agent dir)");
  app.add_option("--max-sessions", options.max_sessions, "Most sessions at once")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-connections", options.max_connections, "Most client connections at once")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-frame-bytes", options.connection.max_frame_bytes,
                 "Largest inbound WebSocket message or stdio line")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-agent-line-bytes", options.agent.max_line_bytes,
                 "Longest line accepted from an agent's stdout")
      ->capture_default_str()->check(CLI::PositiveNumber);
  bool no_agent_restart = false;
  std::uint64_t ui_timeout_ms = options.agent.ui_timeout.count();
  app.add_flag("--no-agent-restart", no_agent_restart,
               "Do not restart an agent that exits on its own");
  app.add_option("--agent-max-restarts", options.agent.max_restarts,
                 "Most restarts of one session's agent within 10 minutes")
      ->capture_default_str();
  app.add_option("--max-pending-ui", options.agent.max_pending_ui,
                 "Most unanswered extension UI dialogs per session")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--ui-timeout-ms", ui_timeout_ms,
                 "Unanswered extension UI dialogs are cancelled after this long")
      ->capture_default_str()->check(CLI::PositiveNumber);
  std::string compile_cache;
  app.add_option("--agent-compile-cache", compile_cache,
                 "Directory for the agents' V8 code cache (NODE_COMPILE_CACHE); 'none' leaves pi's default")
      ->default_str("<state dir>/node-compile-cache");
  app.add_option("--agent-node-options", options.agent.node_options,
                 "Node options for every agent (appended to NODE_OPTIONS)")
      ->capture_default_str();
  app.add_option("--warm-agents", options.warm_agents,
                 "Agents started ahead for create_session (0 = none)")
      ->capture_default_str();
  std::uint64_t hibernate_after_ms = options.hibernation.after.count();
  app.add_option("--hibernate-after-ms", hibernate_after_ms,
                 "Stop the agent of a session idle this long (0 = never); the next command wakes it")
      ->capture_default_str();
  app.add_option("--max-live-agents", options.hibernation.max_live_agents,
                 "Most running agents; beyond it the least recently used idle sessions hibernate (0 = no cap)")
      ->capture_default_str();
  PipelineOptions& pipeline = options.pipeline;
  BreakerOptions& breaker = options.breakers;
  std::uint64_t read_timeout_ms = pipeline.read_timeout.count();
  std::uint64_t command_timeout_ms = pipeline.default_timeout.count();
  std::uint64_t long_timeout_ms = pipeline.long_timeout.count();
  std::uint64_t dependency_wait_ms = pipeline.dependency_wait.count();
  std::uint64_t outcome_max_age_s = pipeline.outcome_max_age.count();
  std::uint64_t breaker_window_ms = breaker.window.count();
  std::uint64_t breaker_recovery_ms = breaker.recovery.count();
  std::uint64_t breaker_slow_ms = breaker.slow_call.count();
  std::uint64_t breaker_idle_ms = breaker.idle_ttl.count();
  app.add_option("--max-pending-per-lane", pipeline.max_pending_per_lane,
                 "Commands waiting in one lane (each session's, the server's) before limit_reached")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-outcomes", pipeline.max_outcomes, "Outcomes kept for replay")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-outcome-bytes", pipeline.max_outcome_bytes,
                 "Bytes of stored outcomes (responses kept for replay) before the oldest are evicted")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--outcome-max-age-seconds", outcome_max_age_s, "Age after which outcomes are evicted")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--read-timeout-ms", read_timeout_ms, "Timeout of read-only commands (get_*, list_sessions, health_check)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--command-timeout-ms", command_timeout_ms, "Timeout of most other commands")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--long-command-timeout-ms", long_timeout_ms,
                 "Timeout of prompt, compact, bash, export_html, session switches, create/delete_session")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--dependency-wait-ms", dependency_wait_ms,
                 "How long a command waits for an unfinished dependsOn command")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rate-limit", options.rate_limit_per_second, "Commands per second per connection")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rate-limit-bytes", options.rate_limit_bytes_per_second,
                 "Inbound bytes per second per connection (checked before parsing)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rate-burst-bytes", options.rate_limit_bytes_burst,
                 "Inbound byte bucket size per connection (at least --max-frame-bytes)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rate-burst", options.rate_limit_burst, "Token bucket size per connection")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-failures", breaker.failure_threshold,
                 "Provider failures within the window that open its circuit")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-slow-runs", breaker.slow_threshold,
                 "Slow runs within the window that open the circuit")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-window-ms", breaker_window_ms, "Window for counting failures and slow runs")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-slow-run-ms", breaker_slow_ms, "A run longer than this counts as slow")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-recovery-ms", breaker_recovery_ms, "Open time before half-open probes")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-half-open-probes", breaker.half_open_max_calls,
                 "Probes admitted while half-open")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--breaker-idle-ttl-ms", breaker_idle_ms, "Closed breakers idle this long are pruned")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--drain-timeout-ms", drain_timeout_ms,
                 "On SIGTERM/SIGINT (or stdin EOF in stdio-only mode): time allowed to finish")
      ->capture_default_str();
  app.add_option("--outbound-high-water-bytes", options.connection.high_water_bytes,
                 "Queued bytes per connection above which session events are dropped for it")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--outbound-hard-cap-bytes", options.connection.hard_cap_bytes,
                 "Queued bytes per WebSocket connection above which it is closed (stdio pauses stdin instead)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--event-buffer-bytes", options.event_buffer_bytes,
                 "Recent event bytes kept per session for resume (switch_session afterSeq)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--heartbeat-seconds", heartbeat_seconds,
                 "WebSocket ping interval; a peer silent for twice this is closed")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-format", log_format, "json|text")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail_usage(e.what());
  }

  if (!log::parse_level(log_level, out.log_level)) return fail_usage("bad --log-level: " + log_level);
  if (log_format != "json" && log_format != "text") return fail_usage("bad --log-format: " + log_format);
  out.log_format = log_format == "json" ? log::Format::json : log::Format::text;

  options.listen = !no_listen;
  if (options.listen && !parse_listen(listen, options.listen_host, options.listen_port))
    return fail_usage("bad --listen (want HOST:PORT): " + listen);
  if (options.listen) {
    // No authentication exists yet, so only loopback may listen (DESIGN §5).
    boost::system::error_code addr_ec;
    auto address = boost::asio::ip::make_address(options.listen_host, addr_ec);
    if (addr_ec) return fail_usage("bad --listen address: " + options.listen_host);
    if (!address.is_loopback())
      return fail_usage("refusing to listen on non-loopback " + options.listen_host +
                        ": pi-server has no authentication yet");
  }
  if (!options.listen && !options.stdio)
    return fail_usage("--no-listen needs --stdio (nothing to serve)");
  options.agent.command = agent::split_command(agent_command);
  if (options.agent.command.empty()) return fail_usage("--agent-command is empty");
  options.drain_timeout = std::chrono::milliseconds(drain_timeout_ms);
  options.connection.heartbeat = std::chrono::seconds(heartbeat_seconds);
  if (no_demo_model && force_demo_model)
    return fail_usage("--demo-model and --no-demo-model contradict each other");
  options.demo_model = force_demo_model ? ServerOptions::DemoModel::forced
                       : no_demo_model  ? ServerOptions::DemoModel::off
                                        : ServerOptions::DemoModel::automatic;
  options.agent.restart = !no_agent_restart;
  options.agent.ui_timeout = std::chrono::milliseconds(ui_timeout_ms);
  options.hibernation.after = std::chrono::milliseconds(hibernate_after_ms);
  pipeline.read_timeout = std::chrono::milliseconds(read_timeout_ms);
  pipeline.default_timeout = std::chrono::milliseconds(command_timeout_ms);
  pipeline.long_timeout = std::chrono::milliseconds(long_timeout_ms);
  pipeline.dependency_wait = std::chrono::milliseconds(dependency_wait_ms);
  pipeline.outcome_max_age = std::chrono::seconds(outcome_max_age_s);
  breaker.window = std::chrono::milliseconds(breaker_window_ms);
  breaker.recovery = std::chrono::milliseconds(breaker_recovery_ms);
  breaker.slow_call = std::chrono::milliseconds(breaker_slow_ms);
  breaker.idle_ttl = std::chrono::milliseconds(breaker_idle_ms);
  options.state_dir = state_dir.empty() ? default_state_dir() : fs::path(state_dir);
  if (compile_cache != "none")
    options.agent.compile_cache_dir =
        fs::absolute(compile_cache.empty() ? options.state_dir / "node-compile-cache" : fs::path(compile_cache));
  return out;
}

}  // namespace pi_server::config
