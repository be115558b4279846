#pragma once
// One connection's outbound frames, bounded in bytes (DESIGN §5 backpressure):
// responses and server events are always queued; session events above the high-water
// mark are dropped for this consumer only and remembered as a per-session seq range, so
// the consumer gets one events_dropped per session once it has drained; above the hard
// cap the owner closes the connection.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pi_server/connection.hpp"

namespace pi_server::reliability {

class OutboundQueue {
 public:
  OutboundQueue(std::size_t high_water_bytes, std::size_t hard_cap_bytes)
      : high_water_(high_water_bytes), hard_cap_(hard_cap_bytes) {}

  // Queues a control frame. Returns closed when the queue is over the hard cap.
  SendStatus push_control(Frame frame);
  // Queues an event, or drops it above the high-water mark.
  SendStatus push_event(Frame frame, std::string_view session_id, std::uint64_t seq);

  bool empty() const { return head_ == frames_.size(); }
  const Frame& front() const { return frames_[head_]; }
  // The queued frames, front first (a transport that writes several at once).
  std::vector<Frame>::const_iterator begin() const { return frames_.begin() + static_cast<std::ptrdiff_t>(head_); }
  std::vector<Frame>::const_iterator end() const { return frames_.end(); }
  // Removes the front frame after it was written. When the queue has drained below half
  // the high-water mark, queues one events_dropped frame per session with drops.
  void pop();

  std::size_t bytes() const { return bytes_; }
  std::uint64_t dropped_total() const { return dropped_total_; }

 private:
  void report_drops_if_drained();
  static constexpr std::size_t kKeptCapacity = 16;
  struct DropRange {
    std::uint64_t from_seq;
    std::uint64_t to_seq;
  };
  std::size_t high_water_;
  std::size_t hard_cap_;
  // A vector read from head_ rather than a std::deque: an empty deque still holds a 512-byte
  // node, and thousands of idle connections each keep an empty queue. Memory is released
  // when the queue drains (issue 15, idle connections).
  std::vector<Frame> frames_;
  std::size_t head_ = 0;
  std::size_t bytes_ = 0;
  std::map<std::string, DropRange, std::less<>> drops_;
  std::uint64_t dropped_total_ = 0;
};

}  // namespace pi_server::reliability
