#pragma once
// Entry points of the transports. The rest of the daemon sees only these functions and
// the Connection/ConnectionHandler seam; Beast stays inside src/transport/.
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pi_server/authenticator.hpp"
#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::transport {

// A bound TCP listener serving HTTP and (when a ConnectionHandler is given) WebSocket
// upgrades on the same port.
//
// Every accepted socket counts against `max_sockets` (0: no cap), whatever its phase:
// waiting for its first request, plain HTTP keep-alive, WebSocket handshake, admitted
// WebSocket, closing. At the cap, the oldest socket not (or no longer) an admitted
// WebSocket is closed to make room for the new one; if every socket is an admitted
// WebSocket, the new one is served once more than the cap (an upgrade is then refused by the
// core with limit_reached, a plain HTTP request is answered without keep-alive) and is
// itself the first to go. When accept fails for lack of descriptors (EMFILE, ENFILE), the
// same oldest socket is closed; with none to close, the listener frees a reserve
// descriptor, accepts the pending connection, closes it at once (shed) and takes the
// reserve back.
class Listener {
 public:
  virtual ~Listener() = default;
  // "HOST:PORT" actually bound (port 0 resolved).
  virtual std::string address() const = 0;
  virtual std::uint16_t port() const = 0;
  // Stops accepting; open connections are not touched.
  virtual void stop() = 0;
  virtual ListenerStats stats() const = 0;
  // SIGHUP: re-reads the TLS certificate and key (no-op without TLS). New handshakes use
  // the new ones; open connections keep theirs. On failure the old ones stay in use.
  virtual Status reload_tls() { return Status::ok(); }
  // A new socket cap (SIGHUP reload); sockets already open are not closed for it.
  virtual void set_max_sockets(std::size_t max_sockets) = 0;
};

// Binds host:port and starts accepting. Fails with the reason (bad address, port in use).
// `ws_handler` may be null: then upgrades are refused with 404. `authenticator` (may be
// null: serve everything, as the implicit principal "local") decides every request first;
// an admitted WebSocket acts for the principal it names. With `tls` enabled every
// connection starts with a TLS handshake (TLS 1.2+): wss:// and https:// only; a plain
// client gets no answer. Fails on unreadable or mismatched certificate and key too.
Result<std::shared_ptr<Listener>> start_listener(
    boost::asio::io_context& io, const std::string& host, std::uint16_t port,
    ConnectionHandler* ws_handler, HttpHandler& http_handler, Authenticator* authenticator,
    const ConnectionLimits& limits, std::size_t max_sockets = 0, const TlsOptions& tls = {});

// Like start_listener, on a socket that is already bound and listening (socket activation).
// The listener owns `listening_fd` from now on.
Result<std::shared_ptr<Listener>> start_listener_on(
    boost::asio::io_context& io, int listening_fd, ConnectionHandler* ws_handler,
    HttpHandler& http_handler, Authenticator* authenticator, const ConnectionLimits& limits,
    std::size_t max_sockets = 0, const TlsOptions& tls = {});

// Raises the soft RLIMIT_NOFILE to the hard limit and logs both (fd_limit): sockets, agent
// pipes and pidfds all need descriptors, and the default soft limit is often 1024. Returns
// the soft limit in force afterwards.
std::size_t raise_descriptor_limit();

// The default --max-connections (0 on the command line): what the descriptor limit leaves
// once every live agent has its descriptors (kDescriptorsPerAgent each, plus a fixed reserve
// for the database, logs and the listener), at least min(1024, limit / 2) and at most
// kMaxDefaultConnections (memory, not descriptors, bounds a larger fleet: set it explicitly).
inline constexpr std::size_t kDescriptorsPerAgent = 5;
inline constexpr std::size_t kDescriptorReserve = 64;
inline constexpr std::size_t kMaxDefaultConnections = 65536;
// However large the connection cap, at most this many sockets may be open before their
// WebSocket upgrade (waiting for a request, in TLS, plain HTTP keep-alive): they are not
// authenticated yet and each may hold a request buffer (16 KB of headers, 64 KB of body).
// Past it the oldest of them is closed to make room (socket_evicted).
inline constexpr std::size_t kMaxSocketsBeforeUpgrade = 1024;
std::size_t connection_cap_for(std::size_t descriptor_limit, std::size_t live_agents);

// Serves the stdio transport on fds 0 (JSON lines in) and 1 (JSON lines out).
std::shared_ptr<Connection> start_stdio(boost::asio::io_context& io, ConnectionHandler& handler,
                                        const ConnectionLimits& limits);

}  // namespace pi_server::transport
