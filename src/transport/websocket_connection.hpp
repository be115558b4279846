#pragma once
// One WebSocket client: a reader coroutine feeding the core and a writer coroutine
// draining a bounded outbound queue, one async_write in flight (STYLE §4).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <memory>

#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "reliability/outbound_queue.hpp"

namespace pi_server::transport {

class WebSocketConnection : public Connection,
                            public std::enable_shared_from_this<WebSocketConnection> {
 public:
  WebSocketConnection(boost::beast::tcp_stream stream, ConnectionHandler& handler,
                      const ConnectionLimits& limits);

  // Completes the upgrade for `request`, then serves the connection until it closes.
  boost::asio::awaitable<void> run(boost::beast::http::request<boost::beast::http::string_body> request);

  std::uint64_t id() const override { return id_; }
  std::string_view transport() const override { return "websocket"; }
  SendStatus send_control(Frame frame) override;
  SendStatus send_event(Frame frame, std::string_view session_id, std::uint64_t seq) override;
  void close_gracefully() override;
  std::size_t queued_bytes() const override { return queue_.bytes(); }

 private:
  boost::asio::awaitable<void> writer();
  void wake_writer();
  void abort_connection(const char* why);

  std::uint64_t id_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  ConnectionHandler& handler_;
  ConnectionLimits limits_;
  reliability::OutboundQueue queue_;
  boost::asio::steady_timer wake_;
  bool open_ = false;             // handshake done, not yet closed
  bool close_requested_ = false;  // flush, then send a close frame
  bool broken_ = false;           // stop writing now
  bool writer_done_ = false;
};

}  // namespace pi_server::transport
