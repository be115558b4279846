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
  // "provider/id" used when create_session names no model; empty lets pi choose (from the
  // base agent dir's settings.json, else the first model it has credentials for).
  std::string default_model;
  // The operator's pi agent dir every session's private one is built on (agent/pi_setup.hpp).
  // Set at start; empty: sessions get no links.
  std::filesystem::path base_agent_dir;
  // models.json for the sessions when it is not the base's own: the demo model's copy
  // (the base's providers plus the demo provider). Empty: the base's.
  std::filesystem::path models_json;
  // V8 code cache shared by every agent (NODE_COMPILE_CACHE): kept across restarts of the
  // daemon so agents do not pay for an empty cache. Empty: pi's default ($TMPDIR).
  std::filesystem::path compile_cache_dir;
  // Node options for every agent (appended to NODE_OPTIONS), e.g. lean heap flags.
  std::string node_options;
  // Longest stdout line accepted from an agent. pi's message_end/turn_end/agent_end carry
  // the whole answer, so tens of MB are normal; longer lines are dropped with a log line.
  std::size_t max_line_bytes = 256u << 20;
  // Graceful stop: close stdin, wait this long, SIGTERM the process group, wait
  // term_grace, then SIGKILL.
  std::chrono::milliseconds eof_grace{1500};
  std::chrono::milliseconds term_grace{3000};
  // Agent stderr lines logged per second per session; the rest is counted and summarized.
  double stderr_lines_per_second = 20;
  // Restart an agent that exits on its own (crash, kill), on the same session files, so the
  // conversation continues. Backoff doubles from restart_backoff up to restart_backoff_max;
  // more than max_restarts within restart_window gives up (the session stays, agent stopped).
  bool restart = true;
  std::chrono::milliseconds restart_backoff{500};
  std::chrono::milliseconds restart_backoff_max{30000};
  std::size_t max_restarts = 5;
  std::chrono::seconds restart_window{600};
  // Extension UI dialogs (select/confirm/input/editor) waiting for a client's answer: at most
  // this many per session (a new one beyond is cancelled at once), each cancelled after
  // ui_timeout if nobody answers.
  std::size_t max_pending_ui = 16;
  std::chrono::milliseconds ui_timeout{300000};
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
  // Heartbeat: Beast pings a silent peer after this long; a peer silent for twice this
  // long is closed.
  std::chrono::seconds heartbeat{30};
};

// Who may talk to the listener (docs/security.md). Authentication is on when a token file
// or a JWT key is given; then every WebSocket upgrade (and /metrics with metrics_auth)
// needs credentials. stdio always acts for the implicit principal "local".
struct AuthOptions {
  // Static tokens, lines "TOKEN PRINCIPAL [admin]" (DESIGN §9); reloaded on SIGHUP.
  std::filesystem::path tokens_file;
  // JWT: an HS256 shared secret file, or a PEM public key (RSA: RS256, EC P-256: ES256).
  // At most one of the two. Reloaded on SIGHUP.
  std::filesystem::path jwt_hs256_secret_file;
  std::filesystem::path jwt_public_key_file;
  // When non-empty, a JWT's aud must contain / its iss must equal this.
  std::string jwt_audience;
  std::string jwt_issuer;
  // Allowance for clock differences in exp, nbf and iat checks. Default 60 s.
  std::chrono::seconds jwt_clock_skew{60};
  // Origins whose browser pages may open a WebSocket (exact match, e.g.
  // "https://app.example"). A request that carries any other Origin header gets HTTP 403:
  // a web page must not drive a daemon whose agents run shell commands. Non-browser
  // clients send no Origin and are not affected.
  std::vector<std::string> allowed_origins;
  // Host header values (names, port ignored, case-insensitive) accepted besides loopback
  // names and IP literals; anything else gets 403 (DNS rebinding).
  std::vector<std::string> allowed_hosts;
  // /metrics needs the same credentials as a WebSocket upgrade.
  bool metrics_auth = false;
  // Listen on a non-loopback address without authentication (logged at every start).
  bool insecure_no_auth = false;

  bool enabled() const {
    return !tokens_file.empty() || !jwt_hs256_secret_file.empty() || !jwt_public_key_file.empty();
  }
};

// TLS on the listener (DESIGN §11): both files or neither; reloaded on SIGHUP.
struct TlsOptions {
  std::filesystem::path cert_file;  // PEM certificate chain
  std::filesystem::path key_file;   // PEM private key
  bool enabled() const { return !cert_file.empty(); }
};

// The command pipeline (DESIGN §4).
struct PipelineOptions {
  // Commands waiting in one lane (not counting the one running) before limit_reached.
  // Default 64.
  std::size_t max_pending_per_lane = 64;
  // Outcomes kept for replay: at most this many (default 10 000), none older than
  // outcome_max_age (default 1 h); the oldest leave first.
  std::size_t max_outcomes = 10000;
  std::chrono::seconds outcome_max_age{3600};
  // ... and together at most this many bytes (responses such as get_messages can be large).
  // Default 64 MiB.
  std::size_t max_outcome_bytes = 64u << 20;
  // How long a command may wait for an unfinished dependsOn command. Default 30 s.
  std::chrono::milliseconds dependency_wait{30000};
  // Timeouts by the command table's timeout class: read (get_*, list_sessions...; default
  // 30 s), normal (default 60 s) and long-running (prompt, compact, bash, export_html,
  // session switches, create/delete_session; default 10 min).
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds default_timeout{60000};
  std::chrono::milliseconds long_timeout{600000};
};

// Circuit breakers, one per LLM provider plus one for bash timeouts (DESIGN §5, §9).
struct BreakerOptions {
  // Failures (or slow runs) within `window` that open a breaker. Defaults 5, 5, 60 s.
  std::size_t failure_threshold = 5;
  std::size_t slow_threshold = 5;
  std::chrono::milliseconds window{60000};
  // A run (agent_start to agent_settled) longer than this counts as slow. Default 120 s.
  std::chrono::milliseconds slow_call{120000};
  // Time an open breaker rejects before it lets probes through (half-open). Default 30 s.
  std::chrono::milliseconds recovery{30000};
  // Probes admitted while half-open. Default 5.
  std::size_t half_open_max_calls = 5;
  // Closed breakers unused this long are forgotten. Default 10 min.
  std::chrono::milliseconds idle_ttl{600000};
};

// What survives a restart (DESIGN §9, §11 "Persistence"): <state dir>/pi-server.db.
struct PersistenceOptions {
  // Keep the outcome journal (a response leaves once its outcome is on disk, and a retry
  // after a restart is replayed). Off (--no-journal): outcomes live in memory only.
  bool journal = true;
  // synchronous=FULL (default): an answered command survives a power cut. Off
  // (--db-sync normal): it survives a crash or kill of the daemon, not a power cut.
  bool sync_full = true;
  // A corrupt or unreadable pi-server.db is moved aside and a fresh one started
  // (--reset-corrupt-db); without it the daemon refuses to start (exit 2).
  bool reset_corrupt_db = false;
  // Start the sessions that were running when the daemon last stopped (--resume-sessions).
  bool resume_sessions = false;
  // delete_session {purge:true} also removes the session's own dir with pi's session
  // files (--purge-session-files). Default: they stay.
  bool purge_session_files = false;
};

// Idle agents are stopped and started again on demand (DESIGN §11 "Hibernation").
struct HibernationOptions {
  // A session idle this long (no run, no pending command or dialog) has its agent stopped;
  // zero: never. Default 15 min.
  std::chrono::milliseconds after{900000};
  // Most sessions with a live agent; beyond it the least recently used idle ones hibernate.
  // Zero: no cap.
  std::size_t max_live_agents = 0;
};

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 3141;
  bool listen = true;
  bool stdio = false;
  std::filesystem::path state_dir;
  std::size_t max_sessions = 256;
  std::size_t max_connections = 1024;
  // Per principal (docs/security.md): most sessions it owns, most connections open at once.
  // 0 = no cap beyond max_sessions / max_connections (the default: with the one implicit
  // principal "local" nothing changes).
  std::size_t max_sessions_per_principal = 0;
  std::size_t max_connections_per_principal = 0;
  // Directories a session's cwd and the file paths commands name must resolve into
  // (security/path_confinement.hpp). Empty: the daemon's working directory and the state dir.
  std::vector<std::filesystem::path> workspace_roots;
  // Recent events kept per session for resume (switch_session afterSeq), in bytes of
  // event frames. Older events leave the buffer first.
  std::size_t event_buffer_bytes = 4u << 20;
  // Per-connection token bucket: commands per second and burst. Replays are free.
  double rate_limit_per_second = 50;
  double rate_limit_burst = 200;
  // Per-connection byte bucket on inbound messages, checked before parsing: bytes per second
  // (default 16 MiB) and burst (default 32 MiB; never below max_frame_bytes, so one message
  // of the largest size always fits an idle bucket).
  double rate_limit_bytes_per_second = 16u << 20;
  double rate_limit_bytes_burst = 32u << 20;
  // The offline demo model (served on a private loopback port): automatic = only when the
  // operator's pi setup configures no model (agent/pi_setup.hpp); forced (--demo-model);
  // off (--no-demo-model). Default automatic.
  enum class DemoModel { automatic, forced, off };
  DemoModel demo_model = DemoModel::automatic;
  // SIGTERM/SIGINT or stdin EOF (stdio only): time allowed for in-flight work.
  std::chrono::milliseconds drain_timeout{10000};
  ConnectionLimits connection;
  AuthOptions auth;
  TlsOptions tls;
  AgentOptions agent;
  PersistenceOptions persistence;
  PipelineOptions pipeline;
  BreakerOptions breakers;
  HibernationOptions hibernation;
  // Agents started ahead for create_session (session/warm_pool.hpp). Zero: none.
  std::size_t warm_agents = 1;
};

}  // namespace pi_server
