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
#include "connections/connection_registry.hpp"
#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "reliability/asio_scheduler.hpp"
#include "reliability/command_pipeline.hpp"
#include "reliability/outcome_store.hpp"
#include "server/admission_policy.hpp"
#include "server/metrics_report.hpp"
#include "server/responder.hpp"
#include "server/server_commands.hpp"
#include "session/session_registry.hpp"

namespace pi_server::server {

inline constexpr std::string_view kProtocolVersion = "1.1.0";

class Server : public ConnectionHandler, public HttpHandler {
 public:
  Server(boost::asio::io_context& io, ServerOptions options);
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
  void set_ready(bool ready) { ready_ = ready; }
  void set_transports(std::vector<std::string> transports) { transports_ = std::move(transports); }
  // Where metrics read the TCP listener's socket counts.
  void set_listener_stats(std::function<ListenerStats()> stats) {
    front_door_.listener = std::move(stats);
  }

  // The process exit status once the loop has stopped: 0, or kExitOutputCutOff when stdio
  // frames were left unwritten (drain timeout, stdout write failure, second signal).
  static constexpr int kExitOutputCutOff = 3;
  int exit_code();

  std::size_t session_count() const { return sessions_.size(); }
  std::size_t connection_count() const { return connections_.size(); }

 private:
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
  FrontDoorStats front_door_;
  // The metrics read the pipeline, declared below (a reference is all they keep); the
  // pipeline runs commands through commands_, which must exist first.
  MetricsReport metrics_;
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
