// pi-server: wiring and the event loop. The one file that knows every concrete type;
// the flags are parsed in src/config/flags.cpp.
#include <algorithm>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <iostream>

#include "agent/pi_setup.hpp"
#include "auth/request_gate.hpp"
#include "config/flags.hpp"
#include "config/reloader.hpp"
#include "demo/demo_model.hpp"
#include "observability/log.hpp"
#include "persistence/sqlite_store.hpp"
#include <boost/asio/post.hpp>
#include "pi_server/options.hpp"
#include "server/server.hpp"
#include "service/systemd.hpp"
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
  const std::size_t descriptor_limit = transport::raise_descriptor_limit();
  // --max-connections 0 (the default): what the descriptor limit leaves after the agents.
  auto connection_cap = [descriptor_limit](const ServerOptions& o) {
    if (o.max_connections > 0) return o.max_connections;
    std::size_t agents = o.hibernation.max_live_agents > 0
                             ? std::min(o.hibernation.max_live_agents, o.max_sessions)
                             : o.max_sessions;
    return transport::connection_cap_for(descriptor_limit, agents);
  };
  ServerOptions options = command_line->options;
  options.max_connections = connection_cap(options);
  if (command_line->options.max_connections == 0)
    log::info("max_connections_sized", {{"maxConnections", options.max_connections},
                                        {"descriptorLimit", descriptor_limit},
                                        {"maxSessions", options.max_sessions}});
  config::Reloader reloader(std::move(command_line).value());
  // SIGHUP's steps (config/reloader.hpp). Token files and TLS certificates add theirs here.
  reloader.add_step("log", {"log-level", "log-format"},
                    [](const config::CommandLine& next, const std::set<std::string>& changed) {
                      log::init(next.log_level, next.log_format);
                      std::string detail;
                      for (const auto& key : changed) detail += (detail.empty() ? "" : ", ") + key;
                      return config::ReloadStepOutcome{true, detail};
                    });

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
  // Without --workspace-root, sessions may work where the daemon runs. A service runs in its
  // state dir (the packaged unit's WorkingDirectory), where only session folders are open:
  // it gets <state dir>/workspace as its root and default cwd instead.
  if (options.workspace_roots.empty()) {
    auto here = fs::canonical(fs::current_path(ec), ec);
    auto rel = here.lexically_relative(options.state_dir);
    if (!ec && !rel.empty() && *rel.begin() != "..") {
      fs::path workspace = options.state_dir / "workspace";
      fs::create_directories(workspace, ec);
      if (ec) {
        log::error("state_dir_failed", {{"path", workspace.string()}, {"error", ec.message()}});
        return kExitFatal;
      }
      options.workspace_roots.push_back(workspace);
      log::info("default_workspace", {{"path", workspace.string()},
                                      {"why", "the daemon runs in its state dir and no --workspace-root is given"}});
    }
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
    auto started = transport::start_listener(io, "127.0.0.1", 0, nullptr, demo_model, nullptr,
                                           options.connection);
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

  // Sessions and outcomes survive restarts here. A database that cannot be used stops the
  // start (exit 2) rather than be replaced silently: the operator decides (--reset-corrupt-db).
  persistence::SqliteOptions db_options;
  db_options.synchronous_full = options.persistence.sync_full;
  db_options.reset_corrupt = options.persistence.reset_corrupt_db;
  db_options.retention.max_age_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options.pipeline.outcome_max_age).count();
  db_options.retention.max_entries = options.pipeline.max_outcomes;
  db_options.retention.max_bytes = options.pipeline.max_outcome_bytes;
  fs::path db_path = options.state_dir / "pi-server.db";
  auto opened = persistence::SqliteStore::open(
      db_path, db_options, [&io](std::function<void()> fn) { boost::asio::post(io, std::move(fn)); });
  if (!opened) {
    log::error("state_db_unusable", {{"path", db_path.string()}, {"error", opened.error()}});
    std::cerr << "pi-server: cannot use the state database " << opened.error()
              << " (left untouched; restore a backup, or start with --reset-corrupt-db to move it "
                 "aside and begin with an empty one)\n";
    return kExitBadUsage;
  }
  std::unique_ptr<persistence::SqliteStore> store = std::move(opened.value());

  server::Server server(io, options, store.get());
  service::SystemdNotifier systemd(io, [&server] {
    return std::to_string(server.session_count()) + " sessions, " +
           std::to_string(server.connection_count()) + " connections";
  });
  server.set_on_drain([&systemd] { systemd.stopping(); });
  // A socket from a .socket unit replaces --listen (the unit's ListenStream= is the address).
  auto activated = service::activated_socket();
  if (!activated.error.empty()) {
    log::error("socket_activation_failed", {{"error", activated.error}});
    std::cerr << "pi-server: " << activated.error << "\n";
    return kExitBadUsage;
  }
  const std::string bound_host = activated.fd ? activated.host : options.listen_host;
  // The door of the listener: Origin, and credentials when authentication is on. The
  // safe-bind rule applies to an activated socket's address as to --listen.
  SystemClock clock;
  auto gate = auth::RequestGate::create(options.auth, bound_host, clock, server.auth_stats());
  if (!gate) {
    log::error("credentials_failed", {{"error", gate.error()}});
    std::cerr << "pi-server: " << gate.error() << "\n";
    return kExitBadUsage;
  }
  if (options.auth.insecure_no_auth)
    log::warn("insecure_no_auth",
              {{"address", bound_host},
               {"why", "--insecure-no-auth: anyone who reaches this port can run commands as "
                       "this user"}});
  std::vector<std::string> transports;
  std::shared_ptr<transport::Listener> listener;
  if (activated.fd || options.listen) {
    auto started = activated.fd
                       ? transport::start_listener_on(io, *activated.fd, &server, server, gate->get(),
                                                      options.connection, options.max_connections,
                                                      options.tls)
                       : transport::start_listener(io, options.listen_host, options.listen_port,
                                                   &server, server, gate->get(), options.connection,
                                                   options.max_connections, options.tls);
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
  // SIGHUP reloads (a closed terminal must not kill the daemon and its agents either).
  std::function<void(boost::system::error_code, int)> on_hangup = [&](boost::system::error_code ec, int) {
    if (ec) return;
    reloader.reload();
    hangup.async_wait(on_hangup);
  };
  hangup.async_wait(on_hangup);

  // Files, not keys: the token file, the JWT key and the TLS certificate are re-read on
  // every reload (a file that fails keeps the previous one, and says why).
  reloader.add_step("credentials", {}, [&](const config::CommandLine&, const std::set<std::string>&) {
    gate.value()->reload();
    return config::ReloadStepOutcome{true, ""};
  });
  if (listener && options.tls.enabled())
    reloader.add_step("tls", {}, [&](const config::CommandLine&, const std::set<std::string>&) {
      if (auto reloaded = listener->reload_tls(); !reloaded) {
        log::error("tls_reload_failed", {{"error", reloaded.message()}});
        return config::ReloadStepOutcome{false, reloaded.message()};
      }
      log::info("tls_reloaded", {{"cert", options.tls.cert_file.string()}});
      return config::ReloadStepOutcome{true, "certificate and key re-read"};
    });
  reloader.add_step("limits", {"max-sessions", "max-connections"},
                    [&](const config::CommandLine& next, const std::set<std::string>& changed) {
                      std::string detail;
                      if (changed.count("max-sessions")) {
                        server.set_max_sessions(next.options.max_sessions);
                        detail = "max-sessions " + std::to_string(next.options.max_sessions);
                      }
                      if (changed.count("max-connections") ||
                          (changed.count("max-sessions") && next.options.max_connections == 0)) {
                        // 0 (sized from the descriptor limit) depends on max-sessions too.
                        // max-live-agents needs a restart: size with the running one.
                        ServerOptions sized = next.options;
                        sized.hibernation.max_live_agents = options.hibernation.max_live_agents;
                        std::size_t cap = connection_cap(sized);
                        server.set_max_connections(cap);
                        if (listener) listener->set_max_sockets(cap);
                        detail += std::string(detail.empty() ? "" : ", ") + "max-connections " +
                                  std::to_string(cap);
                      }
                      return config::ReloadStepOutcome{true, detail};
                    });

  std::shared_ptr<Connection> stdio;
  if (options.stdio) stdio = transport::start_stdio(io, server, options.connection);
  if (options.persistence.resume_sessions) server.resume_sessions();
  server.set_ready(true);
  if (listener)
    log::info("listening", {{"address", listener->address()},
                            {"tls", options.tls.enabled()},
                            {"stateDir", options.state_dir.string()},
                            {"socketActivated", activated.fd.has_value()},
                            {"version", PI_SERVER_VERSION}});
  else
    log::info("serving_stdio", {{"stateDir", options.state_dir.string()}, {"version", PI_SERVER_VERSION}});
  // The listener accepts and /healthz answers 200 from here on.
  systemd.ready(listener ? "listening on " + listener->address() + ": " : "serving stdio: ");

  io.run();
  int code = server.exit_code();
  log::info("exit", {{"code", code}});
  return code;
}
