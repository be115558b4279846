#include "service/systemd.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "observability/log.hpp"

namespace pi_server::service {

namespace {
constexpr std::chrono::seconds kStatusInterval{5};
}

SystemdNotifier::SystemdNotifier(boost::asio::io_context& io, std::function<std::string()> status)
    : io_(io), timer_(io), status_(std::move(status)) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket && *socket;
  std::uint64_t usec = 0;
  // Not unsetting the variables: a restart of the loop in the same process (tests) reads them again.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);
}

void SystemdNotifier::send(const std::string& message) {
  if (!enabled_) return;
  int r = sd_notify(0, message.c_str());
  if (r < 0) log::warn("sd_notify_failed", {{"error", std::strerror(-r)}});
}

void SystemdNotifier::ready(const std::string& status_prefix) {
  if (!enabled_) return;
  prefix_ = status_prefix;
  last_status_ = status_();
  send("READY=1\nSTATUS=" + prefix_ + last_status_);
  log::info("systemd_ready", {{"watchdogUsec", watchdog_ ? watchdog_->count() : 0}});
  if (watchdog_) send("WATCHDOG=1");
  tick();
}

void SystemdNotifier::stopping() {
  if (!enabled_ || stopping_) return;
  stopping_ = true;
  send("STOPPING=1\nSTATUS=draining: " + status_());
}

// One timer on the loop does both jobs: a loop that is stuck stops sending WATCHDOG=1, and
// systemd restarts the service (WatchdogSec in the unit).
void SystemdNotifier::tick() {
  auto interval = watchdog_ ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(*watchdog_ / 2)
                            : std::chrono::duration_cast<std::chrono::steady_clock::duration>(kStatusInterval);
  timer_.expires_after(interval);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    if (watchdog_) send("WATCHDOG=1");
    if (!stopping_) {
      std::string now = status_();
      if (now != last_status_) {
        last_status_ = now;
        send("STATUS=" + prefix_ + now);
      }
    }
    tick();
  });
}

ActivatedSocket activated_socket() {
  ActivatedSocket out;
  int n = sd_listen_fds(1);
  if (n <= 0) {
    if (n < 0) out.error = std::string("LISTEN_FDS: ") + std::strerror(-n);
    return out;
  }
  if (n > 1) {
    out.error = "systemd passed " + std::to_string(n) + " sockets; pi-server takes one (ListenStream= once)";
    return out;
  }
  int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
    out.error = "the socket systemd passed is not a listening TCP socket";
    return out;
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  char text[INET6_ADDRSTRLEN] = {};
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      !::inet_ntop(addr.ss_family,
                   addr.ss_family == AF_INET6
                       ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr)
                       : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&addr)->sin_addr),
                   text, sizeof text)) {
    out.error = std::string("the socket systemd passed has no address: ") + std::strerror(errno);
    return out;
  }
  out.fd = fd;
  out.host = text;
  return out;
}

}  // namespace pi_server::service
