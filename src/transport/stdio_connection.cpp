// The stdio transport: JSON lines on fd 0, protocol frames (one per line) on fd 1.
// Logs never go to stdout. Same outbound queue and event-drop policy as WebSocket, with one
// difference: stdio has one client that sends the commands and reads their answers, so it
// gets pipe backpressure instead of a hard cap. While the queue is at or above the
// high-water mark stdin is not read; a response is never refused, and the connection is
// never closed for its queue.
#include <unistd.h>

#include <limits>
#include <vector>
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
        // No hard cap: responses are never dropped; reading pauses instead (see top).
        queue_(limits.high_water_bytes, std::numeric_limits<std::size_t>::max()) {}

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
  // Output backpressure: a client that sends faster than it reads its answers is read no
  // faster than its answers drain.
  bool output_backed_up() const { return queue_.bytes() >= limits_.high_water_bytes; }

  void read() {
    if (reading_ || input_closed_ || !open_) return;
    if (output_backed_up()) {
      read_paused_ = true;  // write() resumes once the queue is below the high-water mark
      return;
    }
    read_paused_ = false;
    reading_ = true;
    auto buf = framer_.prepare(64 * 1024);
    in_.async_read_some(asio::buffer(buf.data(), buf.size()),
                        [self = shared_from_this()](error_code ec, std::size_t n) {
                          self->reading_ = false;
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
    input_closed_ = true;
    if (framer_.buffered() > 0 || framer_.discarding()) framer_.feed("\n", *this);
    if (open_) handler_.on_input_closed(*this);
  }

  // Writes as many queued frames as fit in one gathered write (each followed by '\n').
  void write() {
    if (writing_ || queue_.empty() || !open_) return;
    writing_ = true;
    static const char kNewline = '\n';
    constexpr std::size_t kMaxFrames = 512;
    constexpr std::size_t kMaxBytes = 1u << 20;
    buffers_.clear();
    std::size_t bytes = 0;
    in_flight_ = 0;
    for (const Frame& f : queue_) {
      if (in_flight_ > 0 && (in_flight_ == kMaxFrames || bytes + f->size() > kMaxBytes)) break;
      buffers_.push_back(asio::buffer(*f));
      buffers_.push_back(asio::buffer(&kNewline, 1));
      bytes += f->size() + 1;
      ++in_flight_;
    }
    asio::async_write(out_, buffers_, [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      if (!self->open_) return;
      if (ec) {
        log::warn("stdout_write_failed", {{"error", ec.message()}, {"queuedBytes", self->queue_.bytes()}});
        self->finish();
        return;
      }
      for (std::size_t i = 0; i < self->in_flight_; ++i) self->queue_.pop();
      self->in_flight_ = 0;
      if (self->queue_.empty() && self->close_requested_) {
        self->finish();
        return;
      }
      if (self->read_paused_ && !self->output_backed_up()) self->read();
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
  std::vector<asio::const_buffer> buffers_;  // the write in flight
  std::size_t in_flight_ = 0;                // frames at the queue's front being written
  bool open_ = false;
  bool writing_ = false;
  bool reading_ = false;
  bool read_paused_ = false;  // output backed up (see read())
  bool input_closed_ = false;
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
