#include "transport/heartbeat.hpp"

#include <algorithm>

namespace pi_server::transport {

HeartbeatMonitor::HeartbeatMonitor(boost::asio::any_io_executor executor,
                                   std::chrono::milliseconds period)
    : timer_(std::move(executor)), period_(period) {}

void HeartbeatMonitor::add(Member* member) {
  members_.insert(member);
  arm();
}

void HeartbeatMonitor::remove(Member* member) {
  members_.erase(member);
  // The timer runs out by itself when nobody is left (no cancel: it holds no member).
}

void HeartbeatMonitor::arm() {
  if (armed_ || period_.count() == 0 || members_.empty()) return;
  armed_ = true;
  // Half a period: a peer silent for a period gets its ping within 1.5 periods.
  timer_.expires_after(std::max(period_ / 2, std::chrono::milliseconds(50)));
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!self || ec) return;
    self->armed_ = false;
    self->tick();
    self->arm();
  });
}

void HeartbeatMonitor::tick() {
  // A member's check may end its connection; removal happens later, but copy anyway so no
  // change of the set can invalidate this loop.
  snapshot_.assign(members_.begin(), members_.end());
  auto now = std::chrono::steady_clock::now();
  for (auto* m : snapshot_)
    if (members_.count(m)) m->heartbeat_tick(now);
}

}  // namespace pi_server::transport
