#pragma once
// The newest event frames of one session, oldest first, bounded by their total size: what a
// client resuming with afterSeq can be sent again. Frames are shared with the outbound
// queues (no copy).
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "pi_server/connection.hpp"

namespace pi_server::session {

class EventRing {
 public:
  explicit EventRing(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Appends the event numbered `seq` (one more than the last pushed) and drops the oldest
  // events until the ring fits its size again; a frame bigger than the bound is not kept.
  void push(std::uint64_t seq, Frame frame);

  // Resume: what the ring holds after `after_seq`.
  struct Replay {
    bool gap = false;            // events after after_seq have already left the buffer
    std::uint64_t first_seq = 0;  // the first event sent (when any), else the next seq
    std::vector<std::pair<std::uint64_t, Frame>> events;
  };
  Replay after(std::uint64_t after_seq) const;

  // Total size of the frames held.
  std::size_t bytes() const { return bytes_; }
  std::size_t size() const { return events_.size(); }

 private:
  std::size_t max_bytes_;
  std::deque<std::pair<std::uint64_t, Frame>> events_;
  std::size_t bytes_ = 0;
  std::uint64_t next_seq_ = 1;  // seq numbers start at 1
};

}  // namespace pi_server::session
