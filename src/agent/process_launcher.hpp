#pragma once
// The production AgentLauncher: spawns the agent with posix_spawn and adopts it as an
// AgentProcess on the event loop.
#include <boost/asio/io_context.hpp>

#include "agent/agent_channel.hpp"
#include "observability/metrics.hpp"

namespace pi_server::agent {

class ProcessLauncher : public AgentLauncher {
 public:
  // `spawn_time` gets how long each posix_spawn blocks the loop (it runs on the loop thread).
  ProcessLauncher(boost::asio::io_context& io, observability::Histogram& spawn_time);

  Result<std::shared_ptr<AgentChannel>> launch(const AgentOptions& options,
                                               const SessionLaunch& launch,
                                               AgentCallbacks callbacks) override;

 private:
  boost::asio::io_context& io_;
  observability::Histogram& spawn_time_;
};

}  // namespace pi_server::agent
