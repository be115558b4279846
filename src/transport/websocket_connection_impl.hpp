#pragma once
// The member definitions of BasicWebSocketConnection, included only by the two .cpp files
// that instantiate it (websocket_connection.cpp: TCP; websocket_connection_tls.cpp: TLS).
// One instantiation per TU keeps each Beast TU near 0.8 GB at -O2 instead of 1.4 GB for both,
// and lets the two compile in parallel.
#include "transport/websocket_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <array>

#include "observability/log.hpp"
#include "transport/awaitable_token.hpp"

namespace pi_server::transport {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace websocket_detail {

constexpr std::string_view kSubprotocol = "pi-server.v1";

inline bool offers_subprotocol(std::string_view header) {
  // "pi-server.v1, bearer.x" -> look for the exact token.
  std::size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    std::size_t start = i;
    while (i < header.size() && header[i] != ',') ++i;
    std::string_view token = header.substr(start, i - start);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token == kSubprotocol) return true;
  }
  return false;
}

// RFC 6455 §7.4: the codes a close frame may carry. Beast 1.81's is_valid_close_code
// also accepts 5000-65535 and echoes them back; those fail the connection with 1002 here.
// (0 is Beast's "no code in the frame", which is valid.)
inline bool valid_close_code(std::uint16_t code) {
  if (code == 0) return true;
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010:
    case 1011: case 1012: case 1013:
      return true;
    default:
      return false;
  }
}

inline bool expected_ending(const boost::system::error_code& ec) {
  return ec == websocket::error::closed || ec == asio::error::eof ||
         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
         ec == beast::error::timeout;
}

}  // namespace websocket_detail
using namespace websocket_detail;

template <class NextLayer>
BasicWebSocketConnection<NextLayer>::BasicWebSocketConnection(NextLayer stream,
                                                              ConnectionHandler& handler,
                                                              const ConnectionLimits& limits,
                                                              Principal principal)
    : id_(next_connection_id()),
      ws_(std::move(stream)),
      handler_(handler),
      limits_(limits),
      principal_(std::move(principal)),
      queue_(limits.high_water_bytes, limits.hard_cap_bytes) {}

template <class NextLayer>
asio::awaitable<void> BasicWebSocketConnection<NextLayer>::run(http::request<http::string_body> request) {
  auto self = this->shared_from_this();
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = std::chrono::seconds(30);
  // Heartbeat: Beast pings after half the idle time and closes if nothing comes back.
  timeouts.idle_timeout = limits_.heartbeat * 2;
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  ws_.read_message_max(limits_.max_frame_bytes);
  // Called by Beast on a received close frame before it echoes the code back. For a code
  // Beast accepts but RFC 6455 does not (5000 and up), our close frame with 1002 goes
  // first: Beast then sends no echo of its own (a close frame was already written) and the
  // read ends once the teardown is done.
  ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
    if (kind != websocket::frame_type::close || close_sent_) return;
    auto code = static_cast<std::uint16_t>(ws_.reason().code);
    if (valid_close_code(code)) return;
    close_sent_ = true;
    log::warn("websocket_bad_close_code", {{"conn", id_}, {"code", code}});
    ws_.async_close(websocket::close_code::protocol_error,
                    [self = this->shared_from_this()](boost::system::error_code) {});
  });
  bool echo_subprotocol = offers_subprotocol(request[http::field::sec_websocket_protocol]);
  ws_.set_option(websocket::stream_base::decorator([echo_subprotocol](websocket::response_type& res) {
    res.set(http::field::server, "pi-server/" PI_SERVER_VERSION);
    if (echo_subprotocol) res.set(http::field::sec_websocket_protocol, kSubprotocol);
  }));

  auto [accept_ec] = co_await ws_.async_accept(request, kTuple);
  // The upgrade request lives in this frame for as long as the connection does: free its
  // headers now (an idle connection should cost little more than its socket).
  request = {};
  if (accept_ec) {
    log::debug("websocket_handshake_failed", {{"conn", id_}, {"error", accept_ec.message()}});
    co_return;
  }
  open_ = true;
  handler_.on_open(self);  // queues server_ready, which starts the writer

  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws_.async_read(buffer, kTuple);
    if (ec) {
      if (expected_ending(ec)) {
        log::debug("websocket_closed", {{"conn", id_}, {"reason", ec.message()}});
      } else {
        // message_too_big (close 1009), bad UTF-8 (1007) and protocol errors end up here;
        // Beast has already sent the matching close frame and shut the write side down
        // (lingering::async_teardown); the socket stays open for linger().
        log::warn("websocket_read_failed", {{"conn", id_}, {"error", ec.message()}});
      }
      break;
    }
    if (!ws_.got_text()) {
      handler_.on_rejected_message(*this, ErrorCode::invalid_command,
                                   "Binary frames are not accepted: send each command as a JSON "
                                   "text frame");
    } else {
      auto data = buffer.cdata();
      handler_.on_message(*this,
                          std::string_view(static_cast<const char*>(data.data()), data.size()));
    }
    buffer.consume(buffer.size());
    // A large message grew the buffer: give it back rather than hold it while idle.
    if (buffer.capacity() > kKeptReadBuffer) buffer.shrink_to_fit();
  }
  open_ = false;
  broken_ = true;  // from here on the writer stops and abort_connection does nothing
  handler_.on_close(*this);  // once: nothing more is sent on this connection
  co_await linger();
}

template <class NextLayer>
asio::awaitable<void> BasicWebSocketConnection<NextLayer>::linger() {
  auto self = this->shared_from_this();
  auto& stream = beast::get_lowest_layer(ws_);
  if (!stream.socket().is_open()) co_return;  // aborted or timed out: nothing to drain
  boost::system::error_code ignored;
  // Usually done already by the teardown after the close frame; an idempotent no-op then.
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  // One deadline for the whole drain: on expiry tcp_stream closes the socket and the
  // pending read ends with beast::error::timeout.
  stream.expires_after(kLingerTime);
  // What the peer still sends is thrown away: every lingering connection reads into the same
  // buffer (one loop thread), so ten thousand clients leaving at once cost no 16 KB each.
  static std::array<char, 16 * 1024> discarded;
  auto buffer = asio::buffer(discarded);
  std::size_t drained = 0;
  boost::system::error_code ec;
  while (drained < kLingerMaxBytes) {
    auto [read_ec, n] = co_await stream.async_read_some(buffer, kTuple);
    drained += n;
    if (read_ec) {
      ec = read_ec;
      break;
    }
  }
  stream.close();
  log::debug("websocket_linger_done",
             {{"conn", id_},
              {"drainedBytes", drained},
              {"ending", ec == asio::error::eof          ? "eof"
                         : ec == beast::error::timeout ? "grace period over"
                         : !ec                         ? "byte limit"
                                                       : "read error"}});
}

template <class NextLayer>
asio::awaitable<void> BasicWebSocketConnection<NextLayer>::writer() {
  auto self = this->shared_from_this();
  // However this coroutine ends (an exception too), a later frame can start a writer again.
  struct Running {
    bool& flag;
    ~Running() { flag = false; }
  } running{writer_running_};
  while (!broken_ && !queue_.empty()) {
    Frame frame = queue_.front();
    ws_.text(true);
    auto [ec, n] = co_await ws_.async_write(asio::buffer(*frame), kTuple);
    if (ec) {
      if (!expected_ending(ec))
        log::warn("websocket_write_failed", {{"conn", id_}, {"error", ec.message()}});
      // operation_aborted: the stream was closed under the write (by the reader's failed
      // read, which ends the connection and lingers); aborting would cut the linger short.
      if (ec != asio::error::operation_aborted) abort_connection("write failed");
      break;
    }
    queue_.pop();
  }
  if (close_requested_ && !broken_ && !close_sent_ && queue_.empty()) {
    close_sent_ = true;
    // Close handshake; the reader then ends with websocket::error::closed.
    auto [ec] = co_await ws_.async_close(websocket::close_code::going_away, kTuple);
    if (ec) abort_connection("close failed");
  }
}

template <class NextLayer>
void BasicWebSocketConnection<NextLayer>::wake_writer() {
  // The writer runs only while there is something to write or a close to send: an idle
  // connection holds no writer coroutine and no timer (issue 15, idle connections).
  if (writer_running_ || broken_ || !open_) return;
  if (queue_.empty() && !close_requested_) return;
  writer_running_ = true;
  asio::co_spawn(ws_.get_executor(), writer(), log_coroutine_failure);
}

template <class NextLayer>
void BasicWebSocketConnection<NextLayer>::evict() {
  log::debug("websocket_evicted", {{"conn", id_}});
  broken_ = true;
  boost::system::error_code ignored;
  auto& socket = beast::get_lowest_layer(ws_).socket();
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).close();  // a writer in async_write ends with an error
}

template <class NextLayer>
void BasicWebSocketConnection<NextLayer>::abort_connection(const char* why) {
  if (broken_) return;
  broken_ = true;
  log::debug("websocket_abort", {{"conn", id_}, {"why", why}});
  boost::system::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).socket().close(ignored);  // ends a writer's async_write
}

template <class NextLayer>
SendStatus BasicWebSocketConnection<NextLayer>::send_control(Frame frame) {
  if (!open_ || broken_) return SendStatus::closed;
  SendStatus s = queue_.push_control(std::move(frame));
  if (s == SendStatus::closed) {
    log::warn("consumer_over_hard_cap", {{"conn", id_}, {"queuedBytes", queue_.bytes()}});
    abort_connection("outbound queue over hard cap");
    return s;
  }
  wake_writer();
  return s;
}

template <class NextLayer>
SendStatus BasicWebSocketConnection<NextLayer>::send_event(Frame frame, std::string_view session_id,
                                           std::uint64_t seq) {
  if (!open_ || broken_) return SendStatus::closed;
  SendStatus s = queue_.push_event(std::move(frame), session_id, seq);
  if (s == SendStatus::queued) wake_writer();
  return s;
}

template <class NextLayer>
void BasicWebSocketConnection<NextLayer>::close_gracefully() {
  if (!open_ || broken_) return;
  close_requested_ = true;
  wake_writer();
}

}  // namespace pi_server::transport
