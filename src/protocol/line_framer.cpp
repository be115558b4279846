#include "protocol/line_framer.hpp"

#include <algorithm>
#include <cstring>

namespace pi_server::protocol {

namespace {
constexpr std::size_t kKeepCapacity = 1u << 20;
}

std::span<char> LineFramer::prepare(std::size_t want) {
  if (buf_.size() - size_ < want) {
    // Move the unfinished line to the front before growing: a long line is then copied
    // O(log n) times as the buffer doubles, not once per read.
    if (start_ > 0) {
      std::memmove(buf_.data(), buf_.data() + start_, size_ - start_);
      size_ -= start_;
      start_ = 0;
    }
    if (buf_.size() - size_ < want) buf_.resize(std::max(buf_.size() * 2, size_ + want));
  }
  return {buf_.data() + size_, buf_.size() - size_};
}

void LineFramer::commit(std::size_t n, Sink& sink) {
  std::size_t scan = size_;
  size_ += n;
  while (scan < size_) {
    const void* hit = std::memchr(buf_.data() + scan, '\n', size_ - scan);
    if (!hit) break;
    std::size_t nl = static_cast<const char*>(hit) - buf_.data();
    if (discarding_) {
      sink.on_oversize(discarded_ + (nl - start_));
      discarding_ = false;
      discarded_ = 0;
    } else {
      std::size_t end = nl;
      if (end > start_ && buf_[end - 1] == '\r') --end;
      if (end - start_ > max_line_) {
        sink.on_oversize(nl - start_);
      } else {
        sink.on_line(std::string_view(buf_.data() + start_, end - start_));
      }
    }
    start_ = nl + 1;
    scan = start_;
  }
  if (start_ == size_) {
    start_ = size_ = 0;
    // A tens-of-MB answer line should not pin that much memory for the agent's lifetime.
    if (buf_.size() > kKeepCapacity) std::string().swap(buf_);
  } else if (size_ - start_ > max_line_ + 1) {
    // Over the limit with no newline yet: drop what we hold and skip to the next '\n'.
    // (+1 leaves room for a '\r' that would be stripped.)
    discarded_ += size_ - start_;
    discarding_ = true;
    start_ = size_ = 0;
  }
}

void LineFramer::feed(std::string_view bytes, Sink& sink) {
  auto span = prepare(bytes.size());
  std::memcpy(span.data(), bytes.data(), bytes.size());
  commit(bytes.size(), sink);
}

}  // namespace pi_server::protocol
