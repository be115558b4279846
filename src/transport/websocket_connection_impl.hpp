#pragma once
// The member definitions of BasicWebSocketConnection, included only by the two .cpp files
// that instantiate it (websocket_connection.cpp: TCP; websocket_connection_tls.cpp: TLS).
#include "transport/websocket_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/field.hpp>
#include <array>
#include <type_traits>

#include "observability/log.hpp"
#include "transport/awaitable_token.hpp"

namespace pi_server::transport {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace websocket_detail {

constexpr std::string_view kSubprotocol = "pi-server.v1";
// wss:// reads into a buffer of its own (OpenSSL writes into it while the read is pending).
constexpr std::size_t kTlsReadBuffer = 4096;
// Reads in a row from one ws:// socket before other connections get a turn.
constexpr int kReadsPerTurn = 16;

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

// Every ws:// connection reads into this buffer and parses what it got before it yields:
// one loop thread, so ten thousand idle sockets hold no read buffer each.
inline std::array<char, 64 * 1024>& shared_read_buffer() {
  thread_local std::array<char, 64 * 1024> buffer;
  return buffer;
}

// An HTTP answer that refuses the upgrade (and closes).
inline std::string refusal(int status, std::string_view reason, std::string_view extra_headers,
                           std::string_view body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Server: pi-server/" PI_SERVER_VERSION "\r\nConnection: close\r\n";
  out += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace websocket_detail
using namespace websocket_detail;

template <class Transport>
BasicWebSocketConnection<Transport>::BasicWebSocketConnection(
    Transport transport, ConnectionHandler& handler, const ConnectionLimits& limits,
    Principal principal, std::shared_ptr<HeartbeatMonitor> heartbeat)
    : id_(next_connection_id()),
      transport_(std::move(transport)),
      handler_(handler),
      limits_(limits),
      principal_(std::move(principal)),
      heartbeat_(std::move(heartbeat)),
      parser_(limits.max_frame_bytes),
      queue_(limits.high_water_bytes, limits.hard_cap_bytes) {}

template <class Transport>
BasicWebSocketConnection<Transport>::~BasicWebSocketConnection() {
  if (heartbeat_) heartbeat_->remove(this);
}

template <class Transport>
asio::ip::tcp::socket& BasicWebSocketConnection<Transport>::socket() {
  if constexpr (std::is_same_v<Transport, asio::ip::tcp::socket>)
    return transport_;
  else
    return beast::get_lowest_layer(transport_).socket();
}

template <class Transport>
asio::awaitable<bool> BasicWebSocketConnection<Transport>::handshake(
    const http::request<http::string_body>& request) {
  std::string answer;
  bool accepted = false;
  auto key = request[http::field::sec_websocket_key];
  if (request[http::field::sec_websocket_version] != "13") {
    answer = refusal(426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
                     "Only WebSocket version 13 is spoken here\n");
  } else if (!ws::plausible_client_key(key)) {
    answer = refusal(400, "Bad Request", "", "Missing or malformed Sec-WebSocket-Key\n");
  } else {
    answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    answer += "Sec-WebSocket-Accept: " + ws::accept_key(key) + "\r\n";
    answer += "Server: pi-server/" PI_SERVER_VERSION "\r\n";
    if (offers_subprotocol(request[http::field::sec_websocket_protocol]))
      answer += "Sec-WebSocket-Protocol: " + std::string(kSubprotocol) + "\r\n";
    answer += "\r\n";
    accepted = true;
  }
  auto [ec, n] = co_await asio::async_write(transport_, asio::buffer(answer), kTuple);
  if (ec) {
    log::debug("websocket_handshake_failed", {{"conn", id_}, {"error", ec.message()}});
    co_return false;
  }
  if (!accepted) {
    log::debug("websocket_handshake_refused", {{"conn", id_}, {"answer", answer.substr(9, 3)}});
    boost::system::error_code ignored;
    socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  co_return accepted;
}

template <class Transport>
asio::awaitable<void> BasicWebSocketConnection<Transport>::run(http::request<http::string_body> request) {
  auto self = this->shared_from_this();
  bool accepted = co_await handshake(request);
  // The upgrade request lives in this frame for as long as the connection does: free its
  // headers now (an idle connection should cost little more than its socket).
  request = {};
  if (!accepted) co_return;
  open_ = true;
  last_heard_ = std::chrono::steady_clock::now();
  if (heartbeat_) heartbeat_->add(this);
  handler_.on_open(self);  // queues server_ready, which starts the writer

  Ending ending = co_await read_frames();
  open_ = false;
  if (heartbeat_) heartbeat_->remove(this);
  handler_.on_close(*this);  // once: nothing more is sent on this connection
  if (ending == Ending::closing && !broken_) {
    co_await linger();
  } else {
    broken_ = true;  // the writer stops
    boost::system::error_code ignored;
    socket().close(ignored);
  }
}

template <class Transport>
asio::awaitable<typename BasicWebSocketConnection<Transport>::Ending>
BasicWebSocketConnection<Transport>::read_frames() {
  boost::system::error_code ec;
  if constexpr (std::is_same_v<Transport, asio::ip::tcp::socket>) {
    // Read what is there until the socket would block, then wait for readability: a
    // waiting connection holds no buffer. (Reading first also catches bytes that came
    // before the wait was registered: Asio's epoll is edge-triggered.)
    transport_.non_blocking(true, ec);
    auto& buffer = shared_read_buffer();
    for (;;) {
      for (int reads = 1;; ++reads) {
        std::size_t n = transport_.read_some(asio::buffer(buffer), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) break;
        if (ec) {
          log::debug("websocket_closed", {{"conn", id_}, {"reason", ec.message()}});
          co_return Ending::peer_gone;
        }
        if (!received(buffer.data(), n)) co_return broken_ ? Ending::peer_gone : Ending::closing;
        if (reads % kReadsPerTurn == 0) {
          // A fast sender does not keep the loop to itself.
          co_await asio::post(transport_.get_executor(), asio::use_awaitable);
          if (broken_) co_return Ending::peer_gone;
        }
      }
      auto [wait_ec] = co_await transport_.async_wait(asio::ip::tcp::socket::wait_read, kTuple);
      if (wait_ec || broken_) {
        log::debug("websocket_closed", {{"conn", id_}, {"reason", wait_ec ? wait_ec.message() : "aborted"}});
        co_return Ending::peer_gone;
      }
    }
  } else {
    std::unique_ptr<char[]> buffer(new char[kTlsReadBuffer]);
    for (;;) {
      auto [read_ec, n] =
          co_await transport_.async_read_some(asio::buffer(buffer.get(), kTlsReadBuffer), kTuple);
      if (read_ec) {
        log::debug("websocket_closed", {{"conn", id_}, {"reason", read_ec.message()}});
        co_return Ending::peer_gone;
      }
      if (!received(buffer.get(), n)) co_return broken_ ? Ending::peer_gone : Ending::closing;
    }
  }
}

template <class Transport>
bool BasicWebSocketConnection<Transport>::received(char* bytes, std::size_t size) {
  if (broken_) return false;
  last_heard_ = std::chrono::steady_clock::now();
  ping_outstanding_ = false;
  // The parser calls on_message & co. for every complete frame in `bytes`.
  return parser_.feed(bytes, size, *this) && !broken_;
}

template <class Transport>
void BasicWebSocketConnection<Transport>::on_message(ws::Opcode opcode, std::string_view payload) {
  // The core may have given up on this connection while handling an earlier message of the
  // same read (its outbound queue over the hard cap): the rest is not for it.
  if (broken_) return;
  if (opcode != ws::Opcode::text) {
    handler_.on_rejected_message(*this, ErrorCode::invalid_command,
                                 "Binary frames are not accepted: send each command as a JSON "
                                 "text frame");
    return;
  }
  handler_.on_message(*this, payload);
}

template <class Transport>
void BasicWebSocketConnection<Transport>::on_ping(std::string_view payload) {
  if (broken_) return;
  queue_control(ws::control_frame(ws::Opcode::pong, payload));
}

template <class Transport>
void BasicWebSocketConnection<Transport>::on_pong(std::string_view) {
  // Hearing anything is enough (received() noted it).
}

template <class Transport>
void BasicWebSocketConnection<Transport>::on_close(std::optional<std::uint16_t> code,
                                                   std::string_view) {
  log::debug("websocket_closed", {{"conn", id_}, {"reason", "close frame"}, {"code", code.value_or(0)}});
  // Our answer echoes the code (RFC 6455 §5.5.1); after our own close it is the reply.
  if (!close_sent_ && !(close_wanted_ && !close_flush_first_)) want_close(code, false);
}

template <class Transport>
void BasicWebSocketConnection<Transport>::on_protocol_error(std::uint16_t close_code, const char* why) {
  // message too big (1009), text that is not UTF-8 (1007), broken framing (1002).
  log::warn("websocket_read_failed", {{"conn", id_}, {"closeCode", close_code}, {"error", why}});
  if (!close_sent_) want_close(close_code, false);
}

template <class Transport>
void BasicWebSocketConnection<Transport>::want_close(std::optional<std::uint16_t> code, bool flush_first) {
  close_wanted_ = true;
  close_flush_first_ = flush_first;
  close_code_ = code;
  wake_writer();
}

template <class Transport>
void BasicWebSocketConnection<Transport>::queue_control(std::string frame) {
  if (close_wanted_ || close_sent_) return;  // nothing but the close from now on
  if (control_out_.size() + frame.size() > kMaxPendingControlBytes) {
    log::warn("websocket_control_backlog", {{"conn", id_}, {"bytes", control_out_.size()}});
    return abort_connection("too many control frames waiting");
  }
  control_out_ += frame;
  wake_writer();
}

template <class Transport>
void BasicWebSocketConnection<Transport>::heartbeat_tick(std::chrono::steady_clock::time_point now) {
  if (broken_) return;
  auto period = heartbeat_->period();
  if (close_sent_) return;  // the close handshake has its own deadline (writer)
  auto silent = now - last_heard_;
  if (silent >= 2 * period) {
    log::debug("websocket_closed", {{"conn", id_}, {"reason", "heartbeat timed out"}});
    return abort_connection("heartbeat timed out");
  }
  if (silent >= period && !ping_outstanding_) {
    ping_outstanding_ = true;
    queue_control(ws::control_frame(ws::Opcode::ping, {}));
  }
}

template <class Transport>
bool BasicWebSocketConnection<Transport>::writer_has_work() const {
  if (broken_ || close_sent_) return false;
  if (!control_out_.empty()) return true;
  if (close_wanted_ && (!close_flush_first_ || queue_.empty())) return true;
  return !queue_.empty() && (!close_wanted_ || close_flush_first_);
}

template <class Transport>
asio::awaitable<void> BasicWebSocketConnection<Transport>::writer() {
  auto self = this->shared_from_this();
  // However this coroutine ends (an exception too), a later frame can start a writer again,
  // and a linger waiting for the close frame goes on.
  struct Running {
    BasicWebSocketConnection& c;
    ~Running() {
      c.writer_running_ = false;
      if (c.writer_done_) c.writer_done_->cancel();
    }
  } running{*this};
  boost::system::error_code ec;
  while (writer_has_work()) {
    if (!control_out_.empty()) {
      std::string out = std::move(control_out_);
      control_out_.clear();
      std::tie(ec, std::ignore) = co_await asio::async_write(transport_, asio::buffer(out), kTuple);
    } else if (close_wanted_ && (!close_flush_first_ || queue_.empty())) {
      std::string out = ws::close_frame(close_code_);
      close_sent_ = true;
      if (open_) {
        // Our close starts the handshake (a drain, the connection cap): a peer that does not
        // answer within kCloseTimeout is cut off. A timer only while closing; it holds a
        // weak reference, so a connection that finished meanwhile is not kept.
        auto timer = std::make_shared<asio::steady_timer>(transport_.get_executor(), kCloseTimeout);
        timer->async_wait([timer, weak = this->weak_from_this()](boost::system::error_code ec) {
          if (ec) return;
          if (auto c = weak.lock(); c && c->open_) c->abort_connection("close handshake timed out");
        });
      }
      std::tie(ec, std::ignore) = co_await asio::async_write(transport_, asio::buffer(out), kTuple);
      if (!ec) {
        if constexpr (std::is_same_v<Transport, asio::ip::tcp::socket>) {
          // Nothing follows our close frame (TLS sends its close_notify in linger first).
          boost::system::error_code ignored;
          transport_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        }
      }
    } else {
      Frame frame = queue_.front();
      auto header = ws::frame_header(ws::Opcode::text, frame->size());
      std::array<asio::const_buffer, 2> buffers{asio::buffer(header.bytes.data(), header.size),
                                                asio::buffer(*frame)};
      std::tie(ec, std::ignore) = co_await asio::async_write(transport_, buffers, kTuple);
      if (!ec) queue_.pop();
    }
    if (ec) {
      if (ec != asio::error::operation_aborted && ec != asio::error::broken_pipe &&
          ec != asio::error::connection_reset)
        log::warn("websocket_write_failed", {{"conn", id_}, {"error", ec.message()}});
      // operation_aborted: the socket was closed under the write (an abort, or the end of
      // the linger); aborting again would change nothing.
      if (ec != asio::error::operation_aborted) abort_connection("write failed");
      break;
    }
  }
}

template <class Transport>
void BasicWebSocketConnection<Transport>::wake_writer() {
  // The writer runs only while there is something to write or a close to send: an idle
  // connection holds no writer coroutine and no timer (issue 15, idle connections).
  if (writer_running_ || !writer_has_work()) return;
  writer_running_ = true;
  asio::co_spawn(transport_.get_executor(), writer(), log_coroutine_failure);
}

template <class Transport>
asio::awaitable<void> BasicWebSocketConnection<Transport>::linger() {
  auto self = this->shared_from_this();
  auto executor = transport_.get_executor();
  auto deadline = std::chrono::steady_clock::now() + kLingerTime;
  // One deadline for the whole linger: on expiry the socket is closed, which ends any
  // pending wait, read or TLS shutdown with an error.
  asio::steady_timer guard(executor, deadline);
  guard.async_wait([weak = this->weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto c = weak.lock()) {
      boost::system::error_code ignored;
      c->socket().close(ignored);
    }
  });
  // Our close frame first (the writer may be busy with a data frame before it).
  if (writer_running_ && socket().is_open()) {
    writer_done_.emplace(executor, deadline);
    co_await writer_done_->async_wait(kTuple);
    writer_done_.reset();
  }
  if constexpr (!std::is_same_v<Transport, asio::ip::tcp::socket>) {
    // Not while the writer still has the close frame in flight (the deadline ended the wait):
    // a second write on the TLS stream.
    if (close_sent_ && !broken_ && !writer_running_ && socket().is_open())
      co_await transport_.async_shutdown(kTuple);
  }
  boost::system::error_code ignored;
  socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  // What the peer still sends is thrown away: every lingering connection reads into the same
  // buffer (one loop thread), so ten thousand clients leaving at once cost no 16 KB each.
  static std::array<char, 16 * 1024> discarded;
  std::size_t drained = 0;
  boost::system::error_code ec;
  while (drained < kLingerMaxBytes && socket().is_open()) {
    auto [read_ec, n] = co_await socket().async_read_some(asio::buffer(discarded), kTuple);
    drained += n;
    if (read_ec) {
      ec = read_ec;
      break;
    }
  }
  guard.cancel();
  broken_ = true;
  socket().close(ignored);
  log::debug("websocket_linger_done",
             {{"conn", id_},
              {"drainedBytes", drained},
              {"ending", ec == asio::error::eof                  ? "eof"
                         : ec == asio::error::operation_aborted ? "grace period over"
                         : !ec && drained >= kLingerMaxBytes    ? "byte limit"
                                                                : "read error"}});
}

template <class Transport>
void BasicWebSocketConnection<Transport>::evict() {
  log::debug("websocket_evicted", {{"conn", id_}});
  broken_ = true;
  boost::system::error_code ignored;
  socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket().close(ignored);  // a pending wait, read or write ends with an error
}

template <class Transport>
void BasicWebSocketConnection<Transport>::abort_connection(const char* why) {
  if (broken_) return;
  broken_ = true;
  log::debug("websocket_abort", {{"conn", id_}, {"why", why}});
  boost::system::error_code ignored;
  socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
}

template <class Transport>
SendStatus BasicWebSocketConnection<Transport>::send_control(Frame frame) {
  if (!accepts_frames()) return SendStatus::closed;
  SendStatus s = queue_.push_control(std::move(frame));
  if (s == SendStatus::closed) {
    log::warn("consumer_over_hard_cap", {{"conn", id_}, {"queuedBytes", queue_.bytes()}});
    abort_connection("outbound queue over hard cap");
    return s;
  }
  wake_writer();
  return s;
}

template <class Transport>
SendStatus BasicWebSocketConnection<Transport>::send_event(Frame frame, std::string_view session_id,
                                                           std::uint64_t seq) {
  if (!accepts_frames()) return SendStatus::closed;
  SendStatus s = queue_.push_event(std::move(frame), session_id, seq);
  if (s == SendStatus::queued) wake_writer();
  return s;
}

template <class Transport>
void BasicWebSocketConnection<Transport>::close_gracefully() {
  if (!open_ || broken_ || close_wanted_) return;
  want_close(ws::kCloseGoingAway, true);
}

}  // namespace pi_server::transport
