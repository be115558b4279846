#include "reliability/outbound_queue.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "protocol/frames.hpp"

namespace pi_server::reliability {

SendStatus OutboundQueue::push_control(Frame frame) {
  report_drops_if_drained();
  if (bytes_ + frame->size() > hard_cap_) return SendStatus::closed;
  bytes_ += frame->size();
  frames_.push_back(std::move(frame));
  return SendStatus::queued;
}

SendStatus OutboundQueue::push_event(Frame frame, std::string_view session_id, std::uint64_t seq) {
  report_drops_if_drained();
  auto it = drops_.find(session_id);
  // Once a session's events are being dropped, keep dropping them until the drop is
  // reported: the consumer must never see a later event before the gap notice. An empty
  // queue takes any event, however large (a 20 MB agent_end must not start a drop).
  bool over = !empty() && bytes_ + frame->size() > high_water_;
  if (over || it != drops_.end()) {
    if (it == drops_.end()) {
      drops_.emplace(std::string(session_id), DropRange{seq, seq});
    } else {
      // A resume (switch_session afterSeq) can replay older seqs into an open drop range.
      it->second.from_seq = std::min(it->second.from_seq, seq);
      it->second.to_seq = std::max(it->second.to_seq, seq);
    }
    ++dropped_total_;
    return SendStatus::dropped;
  }
  bytes_ += frame->size();
  frames_.push_back(std::move(frame));
  return SendStatus::queued;
}

void OutboundQueue::pop() {
  bytes_ -= frames_[head_]->size();
  frames_[head_++].reset();
  if (head_ == frames_.size()) {
    // Drained: start over at the front, and give back a buffer a burst grew.
    frames_.clear();
    head_ = 0;
    if (frames_.capacity() > kKeptCapacity) frames_.shrink_to_fit();
  } else if (head_ >= kKeptCapacity && head_ * 2 >= frames_.size()) {
    // Never drained (a steady stream): drop the written prefix, amortized O(1) per frame.
    frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  report_drops_if_drained();
}

void OutboundQueue::report_drops_if_drained() {
  if (drops_.empty() || bytes_ > high_water_ / 2) return;
  for (const auto& [session, range] : drops_) {
    nlohmann::json data = {
        {"sessionId", session}, {"fromSeq", range.from_seq}, {"toSeq", range.to_seq}};
    Frame f = make_frame(protocol::server_event("events_dropped", data));
    bytes_ += f->size();
    frames_.push_back(std::move(f));
  }
  drops_.clear();
}

}  // namespace pi_server::reliability
