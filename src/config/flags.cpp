// The command line: every flag, its default and its check (CLI11), into a CommandLine.
#include "config/flags.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "agent/agent_launch.hpp"
#include "config/toml_config.hpp"

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

// CLI11's PositiveNumber says "Value 0 not in range 0.000000 to 1797693...(300 digits)".
const CLI::Validator kPositive(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      double value = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(value > 0)) return "want a number > 0, not '" + text + "'";
      return {};
    },
    "> 0", "POSITIVE");

// CLI11 prints a double's default with 6 digits (16777216 becomes "1.67772e+07"), so
// --print-config would not read back the same value; the shortest exact form does.
std::string exact(double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, end);
}

ParseStop usage_error(const std::string& why) { return {kExitBadUsage, "pi-server: " + why + "\n"}; }

// Values that --print-config and reload logs never show (DESIGN §11 secrets: token files,
// JWT secrets, TLS keys; provider keys passed as --agent-env NAME=VALUE).
SecretKeys secret_keys() {
  return {{"auth-tokens", "jwt-hs256-secret-file", "tls-key"}, {"agent-env"}};
}

}  // namespace

Result<CommandLine, int> parse_command_line(int argc, char** argv) {
  auto parsed = parse_arguments(std::vector<std::string>(argv + 1, argv + argc));
  if (parsed) return std::move(parsed).value();
  const ParseStop& stop = parsed.failure();
  (stop.exit_code == 0 ? std::cout : std::cerr) << stop.output << std::flush;
  return stop.exit_code;
}

Result<CommandLine, ParseStop> parse_arguments(const std::vector<std::string>& args) {
  CommandLine out;
  out.args = args;
  ServerOptions& options = out.options;
  std::string listen = "127.0.0.1:3141";
  std::string agent_command = PI_SERVER_DEFAULT_AGENT;
  std::string state_dir;
  std::string log_level = "info";
  std::string log_format;  // empty: text when stderr is a terminal, else json
  bool no_listen = false;
  bool no_demo_model = false;
  bool force_demo_model = false;
  std::uint64_t drain_timeout_ms = 10000;
  std::uint64_t heartbeat_seconds = 30;

  CLI::App app{"pi-server: serves many pi coding-agent sessions over WebSocket and stdio", "pi-server"};
  app.set_version_flag("--version", std::string("pi-server ") + PI_SERVER_VERSION);
  auto reader = std::make_shared<TomlConfig>(app, secret_keys());
  app.config_formatter(reader);
  app.set_config("--config", "", "Read flags from this TOML file (keys are the long flag names)")
      ->configurable(false);
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "Print the effective configuration as TOML (secrets masked) and exit")
      ->configurable(false);
  app.add_option("--listen", listen, "HOST:PORT for WebSocket and HTTP (port 0 picks a free one)")
      ->capture_default_str();
  app.add_flag("--no-listen", no_listen, "Do not open the TCP listener (stdio only)");
  app.add_flag("--stdio", options.stdio, "Serve the JSON-lines protocol on stdin/stdout");
  AuthOptions& auth = options.auth;
  app.add_option("--allow-origin", auth.allowed_origins,
                 "Browser Origin allowed to open a WebSocket (repeatable; default none); others get 403");
  app.add_option("--allow-host", auth.allowed_hosts,
                 "Host header name served besides loopback names and the bound address "
                 "(repeatable); others get 403 (DNS rebinding)");
  app.add_option("--auth-tokens", auth.tokens_file,
                 "Token file: lines 'TOKEN PRINCIPAL [admin]' (sha256:<hex> for hashed tokens); "
                 "reloaded on SIGHUP");
  std::uint64_t jwt_skew_seconds = auth.jwt_clock_skew.count();
  app.add_option("--jwt-hs256-secret-file", auth.jwt_hs256_secret_file,
                 "Accept JWTs signed with HS256 and this secret (at least 32 bytes); reloaded on SIGHUP");
  app.add_option("--jwt-public-key", auth.jwt_public_key_file,
                 "Accept JWTs signed for this PEM public key (RSA: RS256, EC P-256: ES256); "
                 "reloaded on SIGHUP");
  app.add_option("--jwt-audience", auth.jwt_audience, "A JWT's aud must contain this");
  app.add_option("--jwt-issuer", auth.jwt_issuer, "A JWT's iss must be this");
  app.add_option("--jwt-clock-skew-seconds", jwt_skew_seconds,
                 "Clock difference allowed in a JWT's exp, nbf and iat checks")
      ->capture_default_str();
  app.add_option("--tls-cert", options.tls.cert_file,
                 "PEM certificate (chain): serve wss:// and https:// only (TLS 1.2+); reloaded on SIGHUP");
  app.add_option("--tls-key", options.tls.key_file, "PEM private key for --tls-cert");
  app.add_flag("--metrics-auth", auth.metrics_auth,
               "GET /metrics needs the same credentials as a WebSocket upgrade");
  app.add_flag("--insecure-no-auth", auth.insecure_no_auth,
               "Allow a non-loopback --listen without authentication (anyone reaching the port "
               "can run commands)");
  app.add_option("--agent-command", agent_command,
                 "Agent argv prefix, split on spaces; --mode rpc and session flags are appended")
      ->capture_default_str();
  app.add_option("--agent-env", options.agent.extra_env,
                 "NAME=VALUE for the agent's environment, or NAME to pass the daemon's value (repeatable; default none)");
  app.add_option("--default-model", options.agent.default_model,
                 "provider/id for sessions that name no model (default: the offline demo model)");
  app.add_flag("--no-demo-model", no_demo_model,
               "Never use the offline demo model (a session without a configured model fails)");
  app.add_flag("--demo-model", force_demo_model,
               "Use the offline demo model even when a pi model is configured");
  app.add_option("--state-dir", state_dir,
                 "State directory (sessions, pi agent dir); default $STATE_DIRECTORY, "
                 "else $XDG_STATE_HOME/pi-server, else ~/.local/state/pi-server")
      ->default_str(default_state_dir().string());
  app.add_option("--max-sessions", options.max_sessions, "Most sessions at once")
      ->capture_default_str()->check(kPositive);
  // 0: sized at start from the descriptor limit (transport::connection_cap_for).
  options.max_connections = 0;
  app.add_option("--max-connections", options.max_connections,
                 "Most client connections at once (0: sized from the descriptor limit at start)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--max-sessions-per-principal", options.max_sessions_per_principal,
                 "Most sessions one principal may own (0: no cap beyond --max-sessions)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--max-connections-per-principal", options.max_connections_per_principal,
                 "Most connections one principal may have open (0: no cap beyond --max-connections)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  std::vector<std::string> workspace_roots;
  app.add_option("--workspace-root", workspace_roots,
                 "Directory session cwds and the file paths commands name must resolve into "
                 "(repeatable; default: the working directory and the state dir)");
  app.add_option("--max-frame-bytes", options.connection.max_frame_bytes,
                 "Largest inbound WebSocket message or stdio line")
      ->capture_default_str()->check(kPositive);
  app.add_option("--max-agent-line-bytes", options.agent.max_line_bytes,
                 "Longest line accepted from an agent's stdout")
      ->capture_default_str()->check(kPositive);
  bool no_agent_restart = false;
  std::uint64_t ui_timeout_ms = options.agent.ui_timeout.count();
  app.add_flag("--no-agent-restart", no_agent_restart,
               "Do not restart an agent that exits on its own");
  app.add_option("--agent-max-restarts", options.agent.max_restarts,
                 "Most restarts of one session's agent within 10 minutes")
      ->capture_default_str();
  app.add_option("--max-pending-ui", options.agent.max_pending_ui,
                 "Most unanswered extension UI dialogs per session")
      ->capture_default_str()->check(kPositive);
  app.add_option("--ui-timeout-ms", ui_timeout_ms,
                 "Unanswered extension UI dialogs are cancelled after this long")
      ->capture_default_str()->check(kPositive);
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
      ->capture_default_str()->check(kPositive);
  app.add_option("--max-outcomes", pipeline.max_outcomes, "Outcomes kept for replay")
      ->capture_default_str()->check(kPositive);
  app.add_option("--max-outcome-bytes", pipeline.max_outcome_bytes,
                 "Bytes of stored outcomes (responses kept for replay) before the oldest are evicted")
      ->capture_default_str()->check(kPositive);
  app.add_option("--outcome-max-age-seconds", outcome_max_age_s, "Age after which outcomes are evicted")
      ->capture_default_str()->check(kPositive);
  app.add_option("--read-timeout-ms", read_timeout_ms, "Timeout of read-only commands (get_*, list_sessions, health_check)")
      ->capture_default_str()->check(kPositive);
  app.add_option("--command-timeout-ms", command_timeout_ms, "Timeout of most other commands")
      ->capture_default_str()->check(kPositive);
  app.add_option("--long-command-timeout-ms", long_timeout_ms,
                 "Timeout of prompt, compact, bash, export_html, session switches, create/delete_session")
      ->capture_default_str()->check(kPositive);
  app.add_option("--dependency-wait-ms", dependency_wait_ms,
                 "How long a command waits for an unfinished dependsOn command")
      ->capture_default_str()->check(kPositive);
  app.add_option("--rate-limit", options.rate_limit_per_second, "Commands per second per connection")
      ->default_str(exact(options.rate_limit_per_second))->check(kPositive);
  app.add_option("--rate-limit-bytes", options.rate_limit_bytes_per_second,
                 "Inbound bytes per second per connection (checked before parsing)")
      ->default_str(exact(options.rate_limit_bytes_per_second))->check(kPositive);
  app.add_option("--rate-burst-bytes", options.rate_limit_bytes_burst,
                 "Inbound byte bucket size per connection (at least --max-frame-bytes)")
      ->default_str(exact(options.rate_limit_bytes_burst))->check(kPositive);
  app.add_option("--rate-burst", options.rate_limit_burst, "Token bucket size per connection")
      ->default_str(exact(options.rate_limit_burst))->check(kPositive);
  app.add_option("--breaker-failures", breaker.failure_threshold,
                 "Provider failures within the window that open its circuit")
      ->capture_default_str()->check(kPositive);
  app.add_option("--breaker-slow-runs", breaker.slow_threshold,
                 "Slow runs within the window that open the circuit")
      ->capture_default_str()->check(kPositive);
  app.add_option("--breaker-window-ms", breaker_window_ms, "Window for counting failures and slow runs")
      ->capture_default_str()->check(kPositive);
  app.add_option("--breaker-slow-run-ms", breaker_slow_ms, "A run longer than this counts as slow")
      ->capture_default_str()->check(kPositive);
  app.add_option("--breaker-recovery-ms", breaker_recovery_ms, "Open time before half-open probes")
      ->capture_default_str()->check(kPositive);
  app.add_option("--breaker-half-open-probes", breaker.half_open_max_calls,
                 "Probes admitted while half-open")
      ->capture_default_str()->check(kPositive);
  app.add_option("--breaker-idle-ttl-ms", breaker_idle_ms, "Closed breakers idle this long are pruned")
      ->capture_default_str()->check(kPositive);
  app.add_option("--drain-timeout-ms", drain_timeout_ms,
                 "On SIGTERM/SIGINT (or stdin EOF in stdio-only mode): time allowed to finish")
      ->capture_default_str();
  app.add_option("--outbound-high-water-bytes", options.connection.high_water_bytes,
                 "Queued bytes per connection above which session events are dropped for it")
      ->capture_default_str()->check(kPositive);
  app.add_option("--outbound-hard-cap-bytes", options.connection.hard_cap_bytes,
                 "Queued bytes per WebSocket connection above which it is closed (stdio pauses stdin instead)")
      ->capture_default_str()->check(kPositive);
  app.add_option("--event-buffer-bytes", options.event_buffer_bytes,
                 "Recent event bytes kept per session for resume (switch_session afterSeq)")
      ->capture_default_str()->check(kPositive);
  app.add_option("--heartbeat-seconds", heartbeat_seconds,
                 "WebSocket ping interval; a peer silent for twice this is closed")
      ->capture_default_str()->check(kPositive);
  auto& persistence = options.persistence;
  bool no_journal = false;
  std::string db_sync = "full";
  app.add_flag("--resume-sessions", persistence.resume_sessions,
               "At start, bring back every stored session that was running when the daemon stopped");
  app.add_flag("--no-journal", no_journal,
               "Keep command outcomes in memory only (no replay across restarts; faster commands)");
  app.add_option("--db-sync", db_sync,
                 "full: an answered command survives a power cut; normal: it survives a crash of the daemon")
      ->capture_default_str()->check(CLI::IsMember({"full", "normal"}));
  app.add_flag("--reset-corrupt-db", persistence.reset_corrupt_db,
               "Move a corrupt or unreadable <state dir>/pi-server.db aside and start with a fresh one");
  app.add_flag("--purge-session-files", persistence.purge_session_files,
               "delete_session {purge:true} also removes the session's dir with pi's session files");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-format", log_format, "json|text; default text when stderr is a terminal, else json");

  app.get_help_ptr()->configurable(false);
  app.get_option("--version")->configurable(false);

  // CLI11 takes a vector argument list in reverse order.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    std::ostringstream text, err;
    int code = app.exit(e, text, err);
    return ParseStop{code, text.str()};
  } catch (const CLI::CallForVersion& e) {
    std::ostringstream text, err;
    int code = app.exit(e, text, err);
    return ParseStop{code, text.str()};
  } catch (const CLI::ParseError& e) {
    return usage_error(reader->explain(e.what()));
  }

  // A bad value names where it came from: the flag, or the file, line and key.
  auto bad = [&](const std::string& key, const std::string& why) {
    if (auto at = reader->position_of(key)) return usage_error(*at + ": key '" + key + "': " + why);
    return usage_error("--" + key + ": " + why);
  };
  if (!log::parse_level(log_level, out.log_level))
    return bad("log-level", "want trace|debug|info|warn|error, not '" + log_level + "'");
  if (log_format.empty()) log_format = ::isatty(STDERR_FILENO) ? "text" : "json";
  if (log_format != "json" && log_format != "text")
    return bad("log-format", "want json|text, not '" + log_format + "'");
  out.log_format = log_format == "json" ? log::Format::json : log::Format::text;

  options.listen = !no_listen;
  if (options.listen && !parse_listen(listen, options.listen_host, options.listen_port))
    return bad("listen", "want HOST:PORT, not '" + listen + "'");
  if (options.listen) {
    // Whoever reaches the port can run shell commands through an agent: off loopback,
    // only with authentication, or when the operator says so in as many words.
    boost::system::error_code addr_ec;
    auto address = boost::asio::ip::make_address(options.listen_host, addr_ec);
    if (addr_ec) return bad("listen", "not an IP address: " + options.listen_host);
    if (!address.is_loopback() && !auth.enabled() && !auth.insecure_no_auth)
      return bad("listen", "refusing to listen on non-loopback " + options.listen_host +
                               " without authentication: give --auth-tokens or a JWT key "
                               "(or --insecure-no-auth)");
  }
  auth.jwt_clock_skew = std::chrono::seconds(jwt_skew_seconds);
  if (options.tls.cert_file.empty() != options.tls.key_file.empty())
    return bad("tls-cert", "needs --tls-key (and the other way round)");
  if (!auth.jwt_hs256_secret_file.empty() && !auth.jwt_public_key_file.empty())
    return bad("jwt-public-key", "excludes --jwt-hs256-secret-file: give one JWT key");
  bool jwt_on = !auth.jwt_hs256_secret_file.empty() || !auth.jwt_public_key_file.empty();
  if (!jwt_on && (!auth.jwt_audience.empty() || !auth.jwt_issuer.empty()))
    return bad(auth.jwt_audience.empty() ? "jwt-issuer" : "jwt-audience",
               "needs --jwt-hs256-secret-file or --jwt-public-key");
  if (auth.metrics_auth && !auth.enabled())
    return bad("metrics-auth", "needs --auth-tokens or a JWT key");
  if (!options.listen && !options.stdio)
    return bad("no-listen", "needs --stdio (nothing to serve)");
  options.agent.command = agent::split_command(agent_command);
  if (options.agent.command.empty()) return bad("agent-command", "is empty");
  options.drain_timeout = std::chrono::milliseconds(drain_timeout_ms);
  options.connection.heartbeat = std::chrono::seconds(heartbeat_seconds);
  if (no_demo_model && force_demo_model)
    return bad("demo-model", "contradicts no-demo-model");
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
  persistence.journal = !no_journal;
  persistence.sync_full = db_sync == "full";
  if (compile_cache != "none")
    options.agent.compile_cache_dir =
        fs::absolute(compile_cache.empty() ? options.state_dir / "node-compile-cache" : fs::path(compile_cache));
  for (const auto& root : workspace_roots) {
    std::error_code ec;
    if (root.empty() || !fs::is_directory(root, ec))
      return bad("workspace-root", "not a directory: " + root);
    options.workspace_roots.push_back(fs::absolute(root, ec));
  }

  app.get_option("--log-format")->default_str(log_format);
  out.settings = reader->settings(app);
  if (print_config) return ParseStop{0, app.config_to_str(true, true)};
  return out;
}

}  // namespace pi_server::config
