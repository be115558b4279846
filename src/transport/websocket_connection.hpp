#pragma once
// One WebSocket client over our own RFC 6455 framing (websocket_frames.hpp): a reader
// coroutine feeding the core and, while frames are queued, a writer coroutine draining the
// bounded outbound queue, one write in flight (STYLE §4). Heartbeats come from the
// listener's one HeartbeatMonitor.
//
// An idle ws:// connection holds its socket, this object and one pending wait for
// readability: no read buffer (reads go into one buffer shared by the loop thread and are
// parsed at once), no timer, no writer. wss:// keeps a small read buffer of its own, as
// OpenSSL decrypts into it while the read is pending.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "pi_server/connection.hpp"
#include "pi_server/options.hpp"
#include "reliability/outbound_queue.hpp"
#include "transport/heartbeat.hpp"
#include "transport/websocket_frames.hpp"

namespace pi_server::transport {

// wss://: TLS over the TCP stream the HTTP side used.
using TlsStream = boost::asio::ssl::stream<boost::beast::tcp_stream>;

// Transport: tcp::socket (ws://) or TlsStream (wss://). Both are instantiated once, in
// websocket_connection.cpp and websocket_connection_tls.cpp.
template <class Transport>
class BasicWebSocketConnection : public Connection,
                                 public HeartbeatMonitor::Member,
                                 private ws::FrameSink,
                                 public std::enable_shared_from_this<BasicWebSocketConnection<Transport>> {
 public:
  // Lingering close (as nginx's lingering_close): how long and how much the daemon keeps
  // reading and discarding after its close frame before it closes the socket.
  static constexpr std::chrono::milliseconds kLingerTime{2000};
  static constexpr std::size_t kLingerMaxBytes = 64u << 20;
  // After the daemon's own close frame, how long the peer has to answer with its own.
  static constexpr std::chrono::milliseconds kCloseTimeout{5000};
  // Pongs and pings not yet written: a peer that pings without reading is cut off here.
  static constexpr std::size_t kMaxPendingControlBytes = 64u << 10;

  // `transport`: connected (and for TLS, handshaken) with the upgrade request already read.
  BasicWebSocketConnection(Transport transport, ConnectionHandler& handler,
                           const ConnectionLimits& limits, Principal principal,
                           std::shared_ptr<HeartbeatMonitor> heartbeat);
  ~BasicWebSocketConnection() override;

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
  bool admitted() const { return open_ && !close_wanted_ && !broken_; }
  // Closes the socket now (the listener making room); the reader then ends as usual.
  void evict();

  void heartbeat_tick(std::chrono::steady_clock::time_point now) override;

 private:
  enum class Ending { peer_gone, closing };

  boost::asio::awaitable<bool> handshake(const boost::beast::http::request<boost::beast::http::string_body>& request);
  // Reads and parses until the peer's close, a protocol error, EOF or an abort.
  boost::asio::awaitable<Ending> read_frames();
  // Hands `bytes` just read to the parser. False: stop reading.
  bool received(char* bytes, std::size_t size);
  boost::asio::awaitable<void> writer();
  void wake_writer();
  bool writer_has_work() const;
  // Open, and no close frame is to go out before frames queued now (a graceful close still
  // flushes what was queued before and after it).
  bool accepts_frames() const {
    return open_ && !broken_ && !close_sent_ && (!close_wanted_ || close_flush_first_);
  }
  // Queues a close frame: after the queued frames (`flush_first`, a close the daemon
  // starts) or before them (an answer to the peer's close, a protocol error).
  void want_close(std::optional<std::uint16_t> code, bool flush_first);
  void queue_control(std::string frame);
  void abort_connection(const char* why);
  boost::asio::ip::tcp::socket& socket();
  // After the connection is reported closed: once our close frame is out, drain and
  // discard what the peer still sends, up to kLingerTime or kLingerMaxBytes or its EOF,
  // then close the socket.
  boost::asio::awaitable<void> linger();

  // ws::FrameSink
  void on_message(ws::Opcode opcode, std::string_view payload) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(std::optional<std::uint16_t> code, std::string_view reason) override;
  void on_protocol_error(std::uint16_t close_code, const char* why) override;

  std::uint64_t id_;
  Transport transport_;
  ConnectionHandler& handler_;
  ConnectionLimits limits_;
  Principal principal_;  // authenticated at the upgrade
  std::shared_ptr<HeartbeatMonitor> heartbeat_;
  ws::FrameParser parser_;
  reliability::OutboundQueue queue_;
  std::string control_out_;  // encoded pongs and pings for the writer, ahead of data frames
  std::chrono::steady_clock::time_point last_heard_{};
  std::optional<std::uint16_t> close_code_;
  // Set by linger while it waits for the writer to put the close frame out.
  std::optional<boost::asio::steady_timer> writer_done_;
  bool open_ = false;               // handshake done, not yet closed
  bool close_wanted_ = false;       // a close frame is to be sent
  bool close_flush_first_ = false;  // ... after the queued frames
  bool close_sent_ = false;         // our close frame is written
  bool broken_ = false;             // stop writing now
  bool writer_running_ = false;     // a writer coroutine is draining (or closing)
  bool ping_outstanding_ = false;   // pinged; nothing heard since
};

using WebSocketConnection = BasicWebSocketConnection<boost::asio::ip::tcp::socket>;
using TlsWebSocketConnection = BasicWebSocketConnection<TlsStream>;
extern template class BasicWebSocketConnection<boost::asio::ip::tcp::socket>;
extern template class BasicWebSocketConnection<TlsStream>;

}  // namespace pi_server::transport
