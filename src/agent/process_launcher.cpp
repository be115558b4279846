#include "agent/process_launcher.hpp"

#include <chrono>

#include "agent/agent_process.hpp"
#include "observability/log.hpp"

extern char** environ;

namespace pi_server::agent {

ProcessLauncher::ProcessLauncher(boost::asio::io_context& io, observability::Histogram& spawn_time)
    : io_(io), spawn_time_(spawn_time) {}

Result<std::shared_ptr<AgentChannel>> ProcessLauncher::launch(const AgentOptions& options,
                                                              const SessionLaunch& launch,
                                                              AgentCallbacks callbacks) {
  auto request = build_spawn_request(options, launch, environ);
  auto spawn_started = std::chrono::steady_clock::now();
  auto spawned = spawn_process(request);
  spawn_time_.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - spawn_started).count());
  if (!spawned) {
    log::error("agent_spawn_failed", {{"session", launch.session_id},
                                      {"command", request.argv.front()},
                                      {"error", spawned.error()}});
    return Status::error("Could not start the agent (" + request.argv.front() +
                         "): " + spawned.error());
  }
  AgentLimits limits;
  limits.max_line_bytes = options.max_line_bytes;
  std::shared_ptr<AgentChannel> agent =
      AgentProcess::adopt(io_, spawned.value(), std::move(callbacks), limits);
  log::info("agent_started", {{"session", launch.session_id}, {"pid", agent->pid()}});
  return agent;
}

}  // namespace pi_server::agent
