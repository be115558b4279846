#pragma once
// The seam between transports (WebSocket, stdio) and the core. The core sees only
// this interface; Beast and Asio stream types stay inside src/transport/.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pi_server/error_code.hpp"
#include "pi_server/principal.hpp"

namespace pi_server {

// One serialized outbound frame (a JSON object, no trailing newline). Serialized once
// and shared by every connection it goes to.
using Frame = std::shared_ptr<const std::string>;

inline Frame make_frame(std::string text) {
  return std::make_shared<const std::string>(std::move(text));
}

// What happened to a frame handed to Connection::send_*.
enum class SendStatus {
  queued,   // will be written
  dropped,  // an event over this consumer's high-water mark; it gets events_dropped later
  closed,   // the connection is closing (or was just closed for exceeding its hard cap)
};

// A client connection. Owned by its transport; the core holds shared_ptrs only while
// the connection is registered (between ConnectionHandler::on_open and on_close).
// Everything runs on the event-loop thread.
class Connection {
 public:
  virtual ~Connection() = default;

  // Unique for the daemon's lifetime, never reused.
  virtual std::uint64_t id() const = 0;
  // "websocket" or "stdio".
  virtual std::string_view transport() const = 0;
  // Who this connection acts for, fixed when it opened (authentication at the upgrade;
  // stdio and unauthenticated listeners act for the implicit "local" principal).
  virtual const Principal& principal() const { return local_principal(); }

  // Queues a response or server event. Never dropped for backpressure; a connection
  // whose queue exceeds its hard cap is closed instead.
  virtual SendStatus send_control(Frame frame) = 0;

  // Queues a session event with its session id and sequence number. Dropped when the
  // queue is above the high-water mark; the consumer later gets one events_dropped
  // frame per session naming the dropped range.
  virtual SendStatus send_event(Frame frame, std::string_view session_id, std::uint64_t seq) = 0;

  // Flushes what is queued, then closes (WebSocket close 1001 "going away").
  virtual void close_gracefully() = 0;

  // Bytes waiting in the outbound queue (for metrics).
  virtual std::size_t queued_bytes() const = 0;
};

// What a TCP listener counts (logs and metrics). Sockets in every phase count, not only
// admitted connections: handshakes and plain HTTP requests hold descriptors too.
struct ListenerStats {
  std::size_t open_sockets = 0;       // accepted and not yet closed, in every phase
  std::uint64_t accepted_total = 0;   // sockets accepted and served
  std::uint64_t evicted_total = 0;    // closed in their handshake/plain HTTP phase to make room
  std::uint64_t shed_total = 0;       // accepted on the reserve descriptor and closed at once
};

// What a transport reports to the core. All calls on the loop thread.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // A connection is ready for frames; the handler sends server_ready first.
  virtual void on_open(const std::shared_ptr<Connection>& connection) = 0;
  // One inbound text message (WebSocket text frame or stdio line).
  virtual void on_message(Connection& connection, std::string_view text) = 0;
  // An inbound message the transport refused before parsing (binary frame, line over
  // the limit): answered with an error response, never executed.
  virtual void on_rejected_message(Connection& connection, ErrorCode code,
                                   std::string_view reason) = 0;
  // The client will send nothing more but can still receive (stdin reached EOF). The
  // connection stays open until the core closes it. WebSocket never reports this.
  virtual void on_input_closed(Connection& connection) {}
  // The connection is gone; after this no frame reaches it.
  virtual void on_close(Connection& connection) = 0;
};

}  // namespace pi_server

namespace pi_server {

// Connection ids come from one counter for the whole daemon (never reused).
std::uint64_t next_connection_id();

// A plain HTTP answer for the routes served beside the WebSocket upgrade.
struct HttpAnswer {
  unsigned status = 404;
  std::string content_type = "application/json";
  std::string body = R"({"error":"not found"})";
};

// Answers plain HTTP requests on a listener (/healthz, /readyz, /metrics; the demo model's
// /v1/chat/completions on its own listener).
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual HttpAnswer handle_http(std::string_view method, std::string_view target,
                                 std::string_view body) = 0;
};

}  // namespace pi_server
