#pragma once
// The core: every inbound command from every transport goes through Server::on_message,
// the one pipeline (parse -> validate -> shutdown check -> dispatch -> exactly one
// response). Server commands run here; session commands are relayed to the session's agent.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <unordered_map>

#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "protocol/envelope.hpp"
#include "protocol/frames.hpp"
#include "reliability/asio_scheduler.hpp"
#include "observability/metrics.hpp"
#include "reliability/circuit_breaker.hpp"
#include "reliability/command_pipeline.hpp"
#include "connections/connection_registry.hpp"
#include "agent/process_launcher.hpp"
#include "session/session.hpp"

namespace pi_server::server {

inline constexpr std::string_view kProtocolVersion = "1.1.0";

class Server : public ConnectionHandler,
               public HttpHandler,
               public session::SessionObserver,
               public reliability::Executor,
               public reliability::Delivery {
 public:
  Server(boost::asio::io_context& io, ServerOptions options,
         reliability::PipelineOptions pipeline_options = {},
         reliability::BreakerOptions breaker_options = {});
  ~Server() override;

  // Transports report here.
  void on_open(const std::shared_ptr<Connection>& connection) override;
  void on_message(Connection& connection, std::string_view text) override;
  void on_rejected_message(Connection& connection, ErrorCode code, std::string_view reason) override;
  void on_input_closed(Connection& connection) override;
  void on_close(Connection& connection) override;
  HttpAnswer handle_http(std::string_view method, std::string_view target,
                         std::string_view body) override;

  // Drain: refuse new commands (shutting_down), tell every client, stop every agent
  // gracefully, close connections; `done` runs once (at the latest after drain_timeout).
  void shutdown(std::string reason, std::function<void()> done);
  // Called once everything is stopped (set by main to stop the loop).
  bool draining() const { return draining_; }
  void set_ready(bool ready) { ready_ = ready; }
  void set_transports(std::vector<std::string> transports) { transports_ = std::move(transports); }

  std::size_t session_count() const { return sessions_.size(); }
  std::size_t connection_count() const { return connections_.size(); }

  // reliability::Executor: runs a command the pipeline has started.
  void execute(const reliability::Submission& submission, Reply reply) override;
  std::optional<std::uint64_t> session_version(const std::string& session_id) override;
  // reliability::Delivery
  void deliver(std::uint64_t connection_id, const protocol::Response& response) override;
  void deliver_event(std::uint64_t connection_id, std::string_view type,
                     const nlohmann::json& data) override;

  // SessionObserver
  void on_agent_exited(session::Session& session, const agent::ExitStatus& status) override;
  void on_session_quiet(session::Session& session) override;
  void on_provider_result(session::Session& session, const std::string& provider,
                          ProviderResult result) override;
  void on_run_finished(session::Session& session, const std::string& provider,
                       std::chrono::steady_clock::duration length) override;

 private:
  using Handler = void (Server::*)(std::uint64_t, const protocol::Envelope&, Reply);
  void respond(Connection& connection, const protocol::Response& response);
  void respond_to(std::uint64_t connection_id, const protocol::Response& response);
  void broadcast(const Frame& frame);

  void create_session(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void delete_session(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void list_sessions(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void switch_session(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void unsubscribe(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void get_metrics(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void health_check(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void relay_session_command(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void get_command_history(std::uint64_t conn, const protocol::Envelope& env, Reply reply);
  void set_lifecycle_events(std::uint64_t conn, const protocol::Envelope& env, Reply reply);

  nlohmann::json metrics_json() const;
  nlohmann::json health_json() const;
  std::optional<protocol::Response> admission_check(const reliability::Submission& submission);
  void on_command_finished(const reliability::Submission& submission,
                           const protocol::Response& response,
                           std::chrono::steady_clock::duration took);
  void schedule_breaker_pruning();
  // The breaker guarding a command: "bash", the session's provider for LLM-bound commands,
  // or "" for none.
  std::string breaker_key_for(const protocol::Envelope& env) const;
  // The session a command names; if there is none, answers session_not_found and returns null.
  std::shared_ptr<session::Session> session_or_reply(const protocol::Envelope& env,
                                                     const Reply& reply) const;
  void schedule_stall_probe(SteadyTime due);
  // Applies `record` to a breaker and logs a state change.
  void record_breaker(const std::string& key,
                      const std::function<void(reliability::CircuitBreaker&)>& record);
  std::string prometheus_text() const;
  std::filesystem::path prepare_session_dirs(const std::string& session_id);
  void maybe_finish_stdio_drain();
  void schedule_restart(const std::shared_ptr<session::Session>& session,
                        std::chrono::milliseconds delay);
  void finish_shutdown();

  boost::asio::io_context& io_;
  ServerOptions options_;
  std::vector<std::string> transports_;
  ConnectionRegistry connections_;
  SystemClock clock_;
  reliability::AsioScheduler scheduler_;
  reliability::CommandPipeline pipeline_;
  reliability::CircuitBreakerManager breakers_;
  std::unordered_map<std::uint64_t, reliability::TokenBucket> rate_limits_;
  observability::Histogram latency_;
  // How late the loop runs a timer due every kStallProbe: a blocked loop shows up here.
  observability::Histogram loop_stall_;
  double loop_stall_max_seconds_ = 0;
  // Responses of admitted commands by (command label, outcome: "success" or an error code).
  std::map<std::pair<std::string, std::string>, std::uint64_t> outcomes_;
  // Connections that opted out of command_* lifecycle events.
  std::set<std::uint64_t> lifecycle_opt_out_;
  std::map<std::string, std::shared_ptr<session::Session>> sessions_;
  // Deleted sessions whose agent is still stopping.
  std::unordered_map<session::Session*, std::shared_ptr<session::Session>> stopping_;
  session::RelayStats relay_stats_;
  agent::ProcessLauncher launcher_;
  session::SessionContext session_context_;
  std::map<std::string, std::uint64_t> commands_by_type_;
  std::map<std::string, std::uint64_t> errors_by_code_;
  std::uint64_t responses_total_ = 0;
  std::uint64_t responses_undeliverable_ = 0;
  std::uint64_t connections_total_ = 0;
  std::uint64_t agent_restarts_ = 0;
  std::size_t max_pending_per_lane_;
  std::chrono::steady_clock::time_point started_at_;

  bool ready_ = false;
  bool draining_ = false;
  bool stdio_draining_ = false;
  std::function<void()> shutdown_done_;
  boost::asio::steady_timer drain_timer_;
};

}  // namespace pi_server::server
