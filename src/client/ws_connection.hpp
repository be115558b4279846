#pragma once
// One WebSocket client connection, ws:// or wss:// (Beast, OpenSSL), driven on a caller's
// io_context. Shared by pi-server-client and the tests' WsClient (tests/support), so both
// speak to the daemon through the same code. No Beast types in this header.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pi_server/result.hpp"

namespace pi_server::client {

// ws://HOST[:PORT][/PATH] or wss://...; IPv6 hosts in brackets.
struct Endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target = "/";
};
Result<Endpoint> parse_url(std::string_view url);

struct ConnectOptions {
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Authorization
  std::string ca_file;    // wss: trust these CAs as well as the system store
  bool insecure = false;  // wss: no certificate or host name check
  std::size_t max_message_bytes = std::size_t{1} << 30;
};

// How a connect attempt failed: the HTTP status when the server refused the upgrade
// (401, 403, ...), else 0.
struct ConnectError {
  std::string message;
  unsigned http_status = 0;
};

class WsConnection {
 public:
  explicit WsConnection(boost::asio::io_context& io);
  ~WsConnection();

  // Resolves, connects, (TLS handshake,) WebSocket handshake; blocking.
  Result<bool, ConnectError> connect(const Endpoint& endpoint, const ConnectOptions& options);

  // Starts reading one message; `done` gets the message, or a failure ("closed" when the
  // server closed the connection: see close_code()). One read at a time.
  void async_read(std::function<void(Result<std::string>)> done);
  // Queues a message; writes go out one at a time, in order. `done` (optional) runs once written.
  void send(std::string message, bool text = true, std::function<void(Status)> done = {});
  // Sends a close frame (1000) and waits for the server's; `done` runs after.
  void async_close(std::function<void()> done);
  // Closes the socket at once; pending operations end with operation_aborted.
  void abort();

  // Beast splits messages into 4 KiB frames by default; false sends each as one frame.
  void set_auto_fragment(bool on);
  // The close code the server sent, once it closed.
  std::optional<int> close_code() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pi_server::client
