#pragma once
// Entry points of the transports. The rest of the daemon sees only these functions and
// the Connection/ConnectionHandler seam; Beast stays inside src/transport/.
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

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
};

// Binds host:port and starts accepting. Fails with the reason (bad address, port in use).
// `ws_handler` may be null: then upgrades are refused with 404.
Result<std::shared_ptr<Listener>> start_listener(
    boost::asio::io_context& io, const std::string& host, std::uint16_t port,
    ConnectionHandler* ws_handler, HttpHandler& http_handler, const ConnectionLimits& limits,
    std::size_t max_sockets = 0);

// Raises the soft RLIMIT_NOFILE to the hard limit and logs both (fd_limit): sockets, agent
// pipes and pidfds all need descriptors, and the default soft limit is often 1024.
void raise_descriptor_limit();

// Serves the stdio transport on fds 0 (JSON lines in) and 1 (JSON lines out).
std::shared_ptr<Connection> start_stdio(boost::asio::io_context& io, ConnectionHandler& handler,
                                        const ConnectionLimits& limits);

}  // namespace pi_server::transport
