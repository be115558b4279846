// systemd integration (DESIGN §11, docs/operations.md "systemd"): the notifications a
// Type=notify unit relies on, seen through a NOTIFY_SOCKET the test opens, and socket
// activation through systemd's own systemd-socket-activate.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "agent/spawner.hpp"
#include "daemon.hpp"
#include "session_helpers.hpp"
#include "ws_client.hpp"

namespace pi_server::testing {
namespace {

// A unix datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = dir_.path() + "/notify.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("bind notify socket");
  }
  ~NotifySocket() { ::close(fd_); }
  const std::string& path() const { return path_; }

  // Reads datagrams until one contains `needle`; every datagram read is kept in seen().
  std::optional<std::string> wait_for(const std::string& needle, std::chrono::milliseconds timeout) {
    for (const auto& m : seen_)
      if (m.find(needle) != std::string::npos) return m;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      seen_.emplace_back(buf, static_cast<std::size_t>(n));
      if (seen_.back().find(needle) != std::string::npos) return seen_.back();
    }
  }
  const std::vector<std::string>& seen() const { return seen_; }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> seen_;
};

TEST(Systemd, ReadyStatusWatchdogAndStoppingAreNotified) {
  NotifySocket notify;
  Daemon d({.env = {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=200000"}});
  auto ready = notify.wait_for("READY=1", std::chrono::seconds(10));
  ASSERT_TRUE(ready);
  // READY=1 comes once the listener is up: /healthz answers.
  EXPECT_EQ(http_get(d.port(), "/healthz").status, 200u);
  EXPECT_NE(ready->find("STATUS=listening on 127.0.0.1:" + std::to_string(d.port()) +
                        ": 0 sessions, 0 connections"),
            std::string::npos)
      << *ready;

  // WATCHDOG=1 every WATCHDOG_USEC/2 from the loop: several within a second.
  auto count_watchdogs = [&] {
    int n = 0;
    for (const auto& m : notify.seen()) n += m == "WATCHDOG=1";
    return n;
  };
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count_watchdogs() < 4 && std::chrono::steady_clock::now() < until)
    notify.wait_for("never", std::chrono::milliseconds(100));
  EXPECT_GE(count_watchdogs(), 4);

  WsClient c(d.port());
  open_session(c, "s");
  EXPECT_TRUE(notify.wait_for("STATUS=listening on 127.0.0.1:" + std::to_string(d.port()) +
                                  ": 1 sessions, 1 connections",
                              std::chrono::seconds(10)));

  ::kill(d.pid(), SIGTERM);
  auto stopping = notify.wait_for("STOPPING=1", std::chrono::seconds(10));
  ASSERT_TRUE(stopping);
  EXPECT_NE(stopping->find("STATUS=draining"), std::string::npos) << *stopping;
  EXPECT_EQ(d.wait_exit(std::chrono::seconds(15)), 0);
}

TEST(Systemd, WithoutNotifySocketNothingIsSent) {
  Daemon d;
  EXPECT_TRUE(d.logs_with_msg("systemd_ready").empty());
}

std::uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(s);
  return ntohs(addr.sin_port);
}

TEST(Systemd, SocketActivationServesThePassedSocket) {
  const std::string activate = "/usr/bin/systemd-socket-activate";
  if (!std::filesystem::exists(activate))
    GTEST_SKIP() << activate << " is missing (Debian package systemd): socket activation not tested";
  TempDir state, home;
  const std::uint16_t port = free_port();
  // systemd-socket-activate binds, waits for the first connection, then execs the daemon
  // with the listening socket as fd 3 and LISTEN_FDS=1, LISTEN_PID=its pid. The daemon's
  // --listen names another port: the passed socket wins.
  agent::SpawnRequest req;
  req.argv = {activate, "-l", "127.0.0.1:" + std::to_string(port), "-E", "HOME=" + home.path(),
              daemon_binary(), "--state-dir", state.path(), "--listen", "127.0.0.1:1",
              "--agent-command", fake_agent_binary(), "--log-format", "json"};
  req.env = {"PATH=/usr/bin:/bin"};
  auto spawned = agent::spawn_process(req);
  ASSERT_TRUE(spawned) << spawned.error();
  auto p = spawned.value();
  ::close(p.stdin_fd);

  // The first connection waits in the socket's backlog until the daemon accepts it.
  std::optional<HttpResult> health;
  for (int i = 0; i < 50 && !health; ++i) {
    try {
      health = http_get(port, "/healthz");
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // not yet bound
    }
  }
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200u);
  {
    WsClient c(port);
    open_session(c, "activated");
  }
  ::kill(p.pid, SIGTERM);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(p.pid), &info, WEXITED), 0);
  EXPECT_EQ(info.si_code, CLD_EXITED);
  EXPECT_EQ(info.si_status, 0);
  std::string err;
  char buf[65536];
  for (ssize_t n; (n = ::read(p.stderr_fd, buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  EXPECT_NE(err.find("\"socketActivated\":true"), std::string::npos) << err;
  EXPECT_NE(err.find("\"address\":\"127.0.0.1:" + std::to_string(port) + "\""), std::string::npos) << err;
  for (int fd : {p.pidfd, p.stdout_fd, p.stderr_fd}) ::close(fd);
}

}  // namespace
}  // namespace pi_server::testing
