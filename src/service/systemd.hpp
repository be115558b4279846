#pragma once
// The daemon as a systemd service (DESIGN §11 "systemd", docs/operations.md): readiness,
// status, watchdog and stopping notifications through $NOTIFY_SOCKET, and socket activation
// through $LISTEN_FDS. Without those variables every call here does nothing.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace pi_server::service {

class SystemdNotifier {
 public:
  // `status` gives the current STATUS= text ("3 sessions, 5 connections"); it is sent when
  // it changes, checked on every watchdog tick (or every 5 s without a watchdog).
  SystemdNotifier(boost::asio::io_context& io, std::function<std::string()> status);

  // True when $NOTIFY_SOCKET was set at start.
  bool enabled() const { return enabled_; }
  // READY=1 with a first STATUS=; starts the watchdog and status timers on the loop.
  void ready(const std::string& status_prefix);
  // STOPPING=1 (the drain began); stops the status timer, keeps the watchdog going.
  void stopping();
  // The watchdog interval systemd asked for (WATCHDOG_USEC), if any.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

 private:
  void tick();
  void send(const std::string& message);

  boost::asio::io_context& io_;
  boost::asio::steady_timer timer_;
  std::function<std::string()> status_;
  bool enabled_ = false;
  bool stopping_ = false;
  std::optional<std::chrono::microseconds> watchdog_;
  std::string prefix_;
  std::string last_status_;
};

// The listening socket systemd passed (LISTEN_FDS/LISTEN_PID, a .socket unit), or nullopt.
// The LISTEN_* variables are unset so no child sees them. Fails (with the reason) when the
// passed descriptor is not a listening TCP socket, or more than one was passed.
struct ActivatedSocket {
  std::optional<int> fd;
  std::string host;  // the address it is bound to (the safe-bind rule checks it)
  std::string error;
};
ActivatedSocket activated_socket();

}  // namespace pi_server::service
