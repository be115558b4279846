// The stdio transport: JSON lines on fd 0, protocol frames (one per line) on fd 1.
// Logs never go to stdout. Same outbound queue and policies as WebSocket.
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "observability/log.hpp"
#include "protocol/line_framer.hpp"
#include "reliability/outbound_queue.hpp"
#include "transport/transports.hpp"

namespace pi_server::transport {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

class StdioConnection : public Connection,
                        public protocol::LineFramer::Sink,
                        public std::enable_shared_from_this<StdioConnection> {
 public:
  StdioConnection(asio::io_context& io, ConnectionHandler& handler, const ConnectionLimits& limits)
      : id_(next_connection_id()),
        in_(io, ::dup(STDIN_FILENO)),
        out_(io, ::dup(STDOUT_FILENO)),
        handler_(handler),
        limits_(limits),
        framer_(limits.max_frame_bytes),
        queue_(limits.high_water_bytes, limits.hard_cap_bytes) {}

  void start() {
    open_ = true;
    handler_.on_open(shared_from_this());
    read();
  }

  std::uint64_t id() const override { return id_; }
  std::string_view transport() const override { return "stdio"; }

  SendStatus send_control(Frame frame) override {
    if (!open_) return SendStatus::closed;
    SendStatus s = queue_.push_control(std::move(frame));
    if (s == SendStatus::closed) {
      log::error("consumer_over_hard_cap", {{"conn", id_}, {"queuedBytes", queue_.bytes()}});
      finish();
      return s;
    }
    write();
    return s;
  }

  SendStatus send_event(Frame frame, std::string_view session_id, std::uint64_t seq) override {
    if (!open_) return SendStatus::closed;
    SendStatus s = queue_.push_event(std::move(frame), session_id, seq);
    if (s == SendStatus::queued) write();
    return s;
  }

  std::size_t queued_bytes() const override { return queue_.bytes(); }

  void close_gracefully() override {
    if (!open_) return;
    close_requested_ = true;
    if (!writing_) finish();
  }

  // LineFramer::Sink
  void on_line(std::string_view line) override {
    // After a close the rest of a read's lines are not commands any more.
    if (line.empty() || !open_) return;  // blank lines between commands are harmless
    handler_.on_message(*this, line);
  }
  void on_oversize(std::size_t bytes) override {
    if (!open_) return;
    handler_.on_rejected_message(*this, ErrorCode::payload_too_large,
                                 "Line of " + std::to_string(bytes) + " bytes is over the limit of " +
                                     std::to_string(limits_.max_frame_bytes) + " bytes");
  }

 private:
  void read() {
    auto buf = framer_.prepare(64 * 1024);
    in_.async_read_some(asio::buffer(buf.data(), buf.size()),
                        [self = shared_from_this()](error_code ec, std::size_t n) {
                          if (!self->open_) return;
                          if (ec) {
                            if (ec != asio::error::eof)
                              log::warn("stdin_read_failed", {{"error", ec.message()}});
                            self->end_of_input();
                            return;
                          }
                          self->framer_.commit(n, *self);
                          self->read();
                        });
  }

  // EOF ends the last line: an unterminated one is delivered like any other (the size limit
  // included), before the core hears that input is closed.
  void end_of_input() {
    if (framer_.buffered() > 0 || framer_.discarding()) framer_.feed("\n", *this);
    if (open_) handler_.on_input_closed(*this);
  }

  void write() {
    if (writing_ || queue_.empty() || !open_) return;
    writing_ = true;
    static const char kNewline = '\n';
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(*queue_.front()),
                                                 asio::buffer(&kNewline, 1)};
    asio::async_write(out_, buffers, [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (!self->open_) return;
      if (ec) {
        log::warn("stdout_write_failed", {{"error", ec.message()}});
        self->finish();
        return;
      }
      self->queue_.pop();
      if (self->queue_.empty() && self->close_requested_) {
        self->finish();
        return;
      }
      self->write();
    });
  }

  // Never reports on_close from inside a send_*/close call: the caller may be iterating the
  // very subscriber set or registry that on_close changes.
  void finish() {
    if (!open_) return;
    open_ = false;
    error_code ignored;
    in_.close(ignored);
    out_.close(ignored);
    asio::post(out_.get_executor(), [self = shared_from_this()] { self->handler_.on_close(*self); });
  }

  std::uint64_t id_;
  asio::posix::stream_descriptor in_;
  asio::posix::stream_descriptor out_;
  ConnectionHandler& handler_;
  ConnectionLimits limits_;
  protocol::LineFramer framer_;
  reliability::OutboundQueue queue_;
  bool open_ = false;
  bool writing_ = false;
  bool close_requested_ = false;
};

}  // namespace

std::shared_ptr<Connection> start_stdio(asio::io_context& io, ConnectionHandler& handler,
                                        const ConnectionLimits& limits) {
  auto conn = std::make_shared<StdioConnection>(io, handler, limits);
  conn->start();
  return conn;
}

}  // namespace pi_server::transport
