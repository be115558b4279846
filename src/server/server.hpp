#pragma once
// The front door. Every inbound message from every transport arrives at on_message: parse
// (against the command table), refuse while draining, then hand to the one pipeline, which
// runs the rest (replay, admission, lanes, preconditions, execution by ServerCommands,
// exactly one response through the Responder). The Server also owns the pieces and wires
// them, answers the HTTP routes and runs the drain.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/process_launcher.hpp"
#include "auth/refusal.hpp"
#include "connections/connection_registry.hpp"
#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "reliability/asio_scheduler.hpp"
#include "reliability/command_pipeline.hpp"
#include "reliability/outcome_store.hpp"
#include "security/path_confinement.hpp"
#include "server/admission_policy.hpp"
#include "server/metrics_report.hpp"
#include "server/responder.hpp"
#include "server/server_commands.hpp"
#include "server/startup_recovery.hpp"
#include "persistence/outcome_journal.hpp"
#include "persistence/store.hpp"
#include "session/session_records.hpp"
#include "session/session_registry.hpp"

namespace pi_server::server {

inline constexpr std::string_view kProtocolVersion = "1.1.0";

class Server : public ConnectionHandler, public HttpHandler {
 public:
  // `store` (may be null: nothing persists) keeps sessions and, unless --no-journal, the
  // outcome journal; it must outlive the Server. The earlier run's journal is read here.
  Server(boost::asio::io_context& io, ServerOptions options, persistence::Store* store = nullptr);
  ~Server() override;

  // Transports report here.
  void on_open(const std::shared_ptr<Connection>& connection) override;
  void on_message(Connection& connection, std::string_view text) override;
  void on_rejected_message(Connection& connection, ErrorCode code, std::string_view reason) override;
  void on_input_closed(Connection& connection) override;
  void on_close(Connection& connection) override;
  // /healthz, /readyz, /metrics.
  HttpAnswer handle_http(std::string_view method, std::string_view target,
                         std::string_view body) override;

  // Drain: refuse new commands (shutting_down), tell every client, stop every agent
  // gracefully, close connections; `done` runs once (at the latest after drain_timeout).
  void shutdown(std::string reason, std::function<void()> done);
  bool draining() const { return draining_; }
  // Runs once when a drain starts, whatever started it (a signal, stdin EOF): systemd's
  // STOPPING=1.
  void set_on_drain(std::function<void()> on_drain) { on_drain_ = std::move(on_drain); }
  void set_ready(bool ready) { ready_ = ready; }
  // --resume-sessions: starts every stored session that was running when the daemon last
  // stopped (on the loop, as the agents come up); get_startup_recovery reports how it went.
  void resume_sessions();
  void set_transports(std::vector<std::string> transports) { transports_ = std::move(transports); }
  // Where metrics read the TCP listener's socket counts.
  void set_listener_stats(std::function<ListenerStats()> stats) {
    front_door_.listener = std::move(stats);
  }

  // The process exit status once the loop has stopped: 0, or kExitOutputCutOff when stdio
  // frames were left unwritten (drain timeout, stdout write failure, second signal).
  static constexpr int kExitOutputCutOff = 3;
  int exit_code();

  // New caps (SIGHUP reload). Sessions and connections above a lowered cap stay; new ones
  // are refused until the count is below it.
  void set_max_sessions(std::size_t n) { options_.max_sessions = n; }
  void set_max_connections(std::size_t n) { options_.max_connections = n; }

  std::size_t session_count() const { return sessions_.size(); }
  // Filled by the listener's door (auth::RequestGate), read by the metrics.
  auth::AuthStats& auth_stats() { return auth_stats_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  std::unique_ptr<persistence::StoredOutcomeJournal> open_journal();
  void finish_shutdown();
  // Waits for the closing connections: WebSocket close handshakes get a second, stdio output
  // is written to its last byte until the drain deadline. Then runs `done`.
  void await_connections(SteadyTime until);
  void complete_shutdown();
  bool stdio_connection_open() const;
  // Logs stdio_output_cut_off for each stdio connection with unwritten frames (once).
  void note_unwritten_stdio_output();
  // stdio only, after stdin closed: exit once nothing is in flight and every session is quiet.
  void check_stdio_drain();
  void schedule_stall_probe(SteadyTime due);

  boost::asio::io_context& io_;
  ServerOptions options_;
  std::function<void()> on_drain_;
  std::vector<std::string> transports_;
  SystemClock clock_;
  reliability::AsioScheduler scheduler_;
  ConnectionRegistry connections_;
  Responder responder_;
  session::RelayStats relay_stats_;
  agent::ProcessLauncher launcher_;
  session::SessionRegistry sessions_;
  AdmissionPolicy admission_;
  reliability::OutcomeStore outcomes_;
  persistence::Store* store_;
  session::SessionRecords records_;
  StartupRecovery recovery_;
  // The outcome journal on store_ (null without a store or with --no-journal).
  std::unique_ptr<persistence::StoredOutcomeJournal> journal_;
  FrontDoorStats front_door_;
  auth::AuthStats auth_stats_;
  // The metrics read the pipeline, declared below (a reference is all they keep); the
  // pipeline runs commands through commands_, which must exist first.
  MetricsReport metrics_;
  // The workspace roots (--workspace-root; default: the working directory and the state dir).
  security::PathConfinement paths_;
  ServerCommands commands_;
  reliability::CommandPipeline pipeline_;

  bool ready_ = false;
  bool draining_ = false;
  bool stdio_draining_ = false;
  bool closing_connections_ = false;  // finish_shutdown has asked every connection to close
  SteadyTime drain_deadline_{};       // shutdown() + drain_timeout
  SteadyTime close_grace_end_{};      // the WebSocket close handshakes' second
  bool output_cut_off_ = false;
  std::function<void()> shutdown_done_;
  boost::asio::steady_timer drain_timer_;
};

}  // namespace pi_server::server
