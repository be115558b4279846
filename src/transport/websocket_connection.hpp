#pragma once
// One WebSocket client: a reader coroutine feeding the core and, while frames are queued,
// a writer coroutine draining the bounded outbound queue, one async_write in flight (STYLE §4).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/rate_policy.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <memory>

#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "reliability/outbound_queue.hpp"

namespace pi_server::transport {

namespace lingering {
// The TCP stream under a WebSocketConnection. Its own (unlimited) rate policy type makes
// Beast pick the async_teardown below, found by argument-dependent lookup.
struct RatePolicy : boost::beast::unlimited_rate_policy {};
using Stream = boost::beast::basic_stream<boost::asio::ip::tcp, boost::asio::any_io_executor,
                                          RatePolicy>;

// Beast's own teardown, after it sends or answers a close frame, closes the socket after
// reading whatever is there at once; if the peer is still sending (the rest of an oversize
// message), its TCP stack gets a reset and loses our close frame. This one only shuts the
// write side down (the close frame is flushed by then) and leaves the socket open:
// WebSocketConnection::linger() drains the peer, bounded, then closes it.
template <class TeardownHandler>
void async_teardown(boost::beast::role_type, Stream& stream,
                    TeardownHandler&& handler) {
  boost::system::error_code ec;
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  if (ec == boost::asio::error::not_connected) ec = {};
  boost::asio::post(stream.get_executor(),
                    boost::beast::bind_front_handler(std::forward<TeardownHandler>(handler), ec));
}
}  // namespace lingering

// wss://: TLS over the same lingering TCP stream (Beast's ssl teardown sends close_notify,
// then calls lingering::async_teardown on the TCP layer).
using TlsStream = boost::asio::ssl::stream<lingering::Stream>;

// NextLayer: lingering::Stream (ws://) or TlsStream (wss://). Both are instantiated once, in
// websocket_connection.cpp.
template <class NextLayer>
class BasicWebSocketConnection : public Connection,
                                 public std::enable_shared_from_this<BasicWebSocketConnection<NextLayer>> {
 public:
  // Lingering close (as nginx's lingering_close): how long and how much the daemon keeps
  // reading and discarding after its close frame before it closes the socket.
  static constexpr std::chrono::milliseconds kLingerTime{2000};
  static constexpr std::size_t kLingerMaxBytes = 64u << 20;
  // The read buffer kept between messages; a larger one is released after its message.
  static constexpr std::size_t kKeptReadBuffer = 16u << 10;

  // `stream`: connected (and for TLS, handshaken) with the upgrade request already read.
  BasicWebSocketConnection(NextLayer stream, ConnectionHandler& handler,
                           const ConnectionLimits& limits, Principal principal);

  // Completes the upgrade for `request`, then serves the connection until it closes.
  boost::asio::awaitable<void> run(boost::beast::http::request<boost::beast::http::string_body> request);

  std::uint64_t id() const override { return id_; }
  std::string_view transport() const override { return "websocket"; }
  const Principal& principal() const override { return principal_; }
  SendStatus send_control(Frame frame) override;
  SendStatus send_event(Frame frame, std::string_view session_id, std::uint64_t seq) override;
  void close_gracefully() override;
  std::size_t queued_bytes() const override { return queue_.bytes(); }

  // Handshake done, handed to the core and kept by it: not closing, not closed. The
  // listener never closes an admitted connection to make room for a new socket.
  bool admitted() const { return open_ && !close_requested_ && !broken_; }
  // Closes the socket now (the listener making room); the reader then ends as usual.
  void evict();

 private:
  boost::asio::awaitable<void> writer();
  void wake_writer();
  void abort_connection(const char* why);
  // After the connection is reported closed: drain and discard what the peer still sends,
  // up to kLingerTime or kLingerMaxBytes or its EOF, then close the socket.
  boost::asio::awaitable<void> linger();

  std::uint64_t id_;
  boost::beast::websocket::stream<NextLayer> ws_;
  ConnectionHandler& handler_;
  ConnectionLimits limits_;
  Principal principal_;  // authenticated at the upgrade
  reliability::OutboundQueue queue_;
  bool open_ = false;             // handshake done, not yet closed
  bool close_requested_ = false;  // flush, then send a close frame
  bool broken_ = false;           // stop writing now
  bool writer_running_ = false;  // a writer coroutine is draining the queue (or closing)
  bool close_sent_ = false;       // a close frame is on its way (ours or Beast's echo)
};

using WebSocketConnection = BasicWebSocketConnection<lingering::Stream>;
using TlsWebSocketConnection = BasicWebSocketConnection<TlsStream>;
extern template class BasicWebSocketConnection<lingering::Stream>;
extern template class BasicWebSocketConnection<TlsStream>;

}  // namespace pi_server::transport
