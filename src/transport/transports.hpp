#pragma once
// Entry points of the transports. The rest of the daemon sees only these functions and
// the Connection/ConnectionHandler seam; Beast stays inside src/transport/.
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>

#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::transport {

// A bound TCP listener serving HTTP and (when a ConnectionHandler is given) WebSocket
// upgrades on the same port.
class Listener {
 public:
  virtual ~Listener() = default;
  // "HOST:PORT" actually bound (port 0 resolved).
  virtual std::string address() const = 0;
  virtual std::uint16_t port() const = 0;
  // Stops accepting; open connections are not touched.
  virtual void stop() = 0;
};

// Binds host:port and starts accepting. Fails with the reason (bad address, port in use).
// `ws_handler` may be null: then upgrades are refused with 404.
Result<std::shared_ptr<Listener>> start_listener(
    boost::asio::io_context& io, const std::string& host, std::uint16_t port,
    ConnectionHandler* ws_handler, HttpHandler& http_handler, const ConnectionLimits& limits);

// Serves the stdio transport on fds 0 (JSON lines in) and 1 (JSON lines out).
std::shared_ptr<Connection> start_stdio(boost::asio::io_context& io, ConnectionHandler& handler,
                                        const ConnectionLimits& limits);

}  // namespace pi_server::transport
