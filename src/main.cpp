// pi-server: wiring and the event loop. The one file that knows every concrete type;
// the flags are parsed in src/config/flags.cpp.
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <iostream>

#include "agent/pi_setup.hpp"
#include "config/flags.hpp"
#include "demo/demo_model.hpp"
#include "observability/log.hpp"
#include "pi_server/options.hpp"
#include "server/server.hpp"
#include "transport/transports.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace pi_server;

namespace {
constexpr int kExitBadUsage = 2;
constexpr int kExitFatal = 1;
}  // namespace

int main(int argc, char** argv) {
  auto command_line = config::parse_command_line(argc, argv);
  if (!command_line) return command_line.failure();
  log::init(command_line->log_level, command_line->log_format);
  transport::raise_descriptor_limit();
  ServerOptions options = std::move(command_line->options);

  std::error_code ec;
  fs::create_directories(options.state_dir / "agent", ec);
  if (ec) {
    log::error("state_dir_failed", {{"path", options.state_dir.string()}, {"error", ec.message()}});
    return kExitFatal;
  }
  options.state_dir = fs::canonical(options.state_dir, ec);
  if (ec) {
    log::error("state_dir_failed", {{"error", ec.message()}});
    return kExitFatal;
  }

  // Writes to a vanished client must come back as EPIPE, not kill the daemon.
  ::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io(1);

  // The operator's pi setup is every session's base; the demo model only fills in for a
  // setup that configures no model (or when forced).
  auto pi_setup = agent::resolve_pi_setup(options.agent.extra_env, environ, options.state_dir);
  options.agent.base_agent_dir = pi_setup.base_dir;
  auto configured = agent::configured_model(pi_setup, options.agent, environ);
  bool use_demo = options.demo_model == ServerOptions::DemoModel::forced ||
                  (options.demo_model == ServerOptions::DemoModel::automatic && !configured);
  log::info("pi_setup", {{"baseAgentDir", pi_setup.base_dir.string()},
                         {"from", std::string(agent::to_string(pi_setup.source))},
                         {"model", configured.value_or("none configured")}});

  demo::DemoModel demo_model;
  std::shared_ptr<transport::Listener> demo_listener;
  if (use_demo) {
    auto started = transport::start_listener(io, "127.0.0.1", 0, nullptr, demo_model, options.connection);
    if (!started) {
      log::error("demo_model_failed", {{"error", started.error()}});
      return kExitFatal;
    }
    demo_listener = started.value();
    std::string url = "http://" + demo_listener->address();
    // The sessions' models.json becomes the daemon's own copy: the base's providers plus the
    // demo provider. The operator's file is read, never written.
    options.agent.models_json = options.state_dir / "demo" / "models.json";
    if (auto written = demo::write_models_json(options.agent.models_json,
                                               pi_setup.base_dir / "models.json", url);
        !written) {
      log::error("demo_model_failed", {{"error", written.message()}});
      return kExitFatal;
    }
    std::string demo_id = std::string(demo::kProvider) + "/" + std::string(demo::kModelId);
    if (options.agent.default_model.empty()) options.agent.default_model = demo_id;
    log::warn("demo_model_in_use",
              {{"model", demo_id},
               {"address", demo_listener->address()},
               {"why", options.demo_model == ServerOptions::DemoModel::forced
                           ? std::string("--demo-model")
                           : "no model configured: no --default-model, no defaultModel in " +
                                 (pi_setup.base_dir / "settings.json").string() +
                                 ", no provider credential in the environment, auth.json or "
                                 "models.json"}});
  }

  server::Server server(io, options);
  std::vector<std::string> transports;
  std::shared_ptr<transport::Listener> listener;
  if (options.listen) {
    auto started = transport::start_listener(io, options.listen_host, options.listen_port, &server,
                                             server, options.connection, options.max_connections);
    if (!started) {
      log::error("listen_failed", {{"error", started.error()}});
      std::cerr << "pi-server: " << started.error() << "\n";
      return kExitBadUsage;
    }
    listener = started.value();
    server.set_listener_stats([weak = std::weak_ptr(listener)] {
      auto l = weak.lock();
      return l ? l->stats() : ListenerStats{};
    });
    transports.push_back("websocket");
  }
  if (options.stdio) transports.push_back("stdio");
  server.set_transports(transports);

  int signals_seen = 0;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::signal_set hangup(io, SIGHUP);
  std::function<void(boost::system::error_code, int)> on_signal =
      [&](boost::system::error_code ec, int sig) {
        if (ec) return;
        if (++signals_seen > 1) {
          log::warn("second_signal", {{"signal", sig}});
          io.stop();  // agents are killed and reaped as their objects are destroyed
          return;
        }
        log::info("signal", {{"signal", sig}});
        // The listener stays open while draining: /readyz answers 503 and new WebSocket
        // clients are closed at once.
        server.shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT", [&] {
          signals.cancel();
          hangup.cancel();
          io.stop();
        });
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  // SIGHUP (a closed terminal, a reload request) must not kill the daemon and its agents.
  std::function<void(boost::system::error_code, int)> on_hangup = [&](boost::system::error_code ec, int) {
    if (ec) return;
    log::info("sighup_ignored");
    hangup.async_wait(on_hangup);
  };
  hangup.async_wait(on_hangup);

  std::shared_ptr<Connection> stdio;
  if (options.stdio) stdio = transport::start_stdio(io, server, options.connection);
  server.set_ready(true);
  if (listener)
    log::info("listening", {{"address", listener->address()},
                            {"stateDir", options.state_dir.string()},
                            {"version", PI_SERVER_VERSION}});
  else
    log::info("serving_stdio", {{"stateDir", options.state_dir.string()}, {"version", PI_SERVER_VERSION}});

  io.run();
  int code = server.exit_code();
  log::info("exit", {{"code", code}});
  return code;
}
