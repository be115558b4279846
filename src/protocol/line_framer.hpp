#pragma once
// JSON-lines framing for agent pipes and the stdio transport: split on '\n' only (never on
// U+2028/U+2029), strip one trailing '\r', and bound the line length without ever holding
// more than the limit plus one read in memory.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace pi_server::protocol {

class LineFramer {
 public:
  // Receives each complete line (without '\n' and trailing '\r'). The view is valid only
  // during the call.
  struct Sink {
    virtual ~Sink() = default;
    virtual void on_line(std::string_view line) = 0;
    // A line longer than max_line_bytes was discarded; `bytes` is its full length
    // (counted up to its '\n').
    virtual void on_oversize(std::size_t bytes) = 0;
  };

  explicit LineFramer(std::size_t max_line_bytes) : max_line_(max_line_bytes) {}

  // Space for the next read of up to `want` bytes (at least that much is returned).
  std::span<char> prepare(std::size_t want);
  // `n` bytes were written into the span from prepare(); delivers complete lines.
  void commit(std::size_t n, Sink& sink);
  // Convenience for tests and small inputs: prepare + copy + commit.
  void feed(std::string_view bytes, Sink& sink);

  // Bytes of an unfinished line held now (for metrics and tests).
  std::size_t buffered() const { return size_ - start_; }
  // True while discarding the rest of an over-long line.
  bool discarding() const { return discarding_; }

 private:
  std::size_t max_line_;
  std::string buf_;
  std::size_t start_ = 0;  // first byte of the current line
  std::size_t size_ = 0;   // bytes in buf_ that hold data
  bool discarding_ = false;
  std::size_t discarded_ = 0;
};

}  // namespace pi_server::protocol
