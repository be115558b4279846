#include "session/event_ring.hpp"

namespace pi_server::session {

void EventRing::push(std::uint64_t seq, Frame frame) {
  next_seq_ = seq + 1;
  bytes_ += frame->size();
  events_.emplace_back(seq, std::move(frame));
  while (bytes_ > max_bytes_ && !events_.empty()) {
    bytes_ -= events_.front().second->size();
    events_.pop_front();
  }
}

EventRing::Replay EventRing::after(std::uint64_t after_seq) const {
  Replay r;
  std::uint64_t oldest = events_.empty() ? next_seq_ : events_.front().first;
  r.gap = after_seq + 1 < oldest;
  for (const auto& [seq, frame] : events_)
    if (seq > after_seq) r.events.emplace_back(seq, frame);
  r.first_seq = r.events.empty() ? next_seq_ : r.events.front().first;
  return r;
}

}  // namespace pi_server::session
