#pragma once
// One timer for the heartbeats of every WebSocket of a listener, instead of one per
// connection (issue 15: an idle socket should cost little more than its descriptor). Every
// half period it asks each member to check itself: a member pings a peer it has not heard
// from for a period and gives up on one silent for two (see BasicWebSocketConnection).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <unordered_set>
#include <vector>

namespace pi_server::transport {

class HeartbeatMonitor : public std::enable_shared_from_this<HeartbeatMonitor> {
 public:
  class Member {
   public:
    virtual ~Member() = default;
    // Called on every tick while the member is added. Must not add or remove members.
    virtual void heartbeat_tick(std::chrono::steady_clock::time_point now) = 0;
  };

  // `period` 0: no heartbeat (members are never called).
  HeartbeatMonitor(boost::asio::any_io_executor executor, std::chrono::milliseconds period);
  std::chrono::milliseconds period() const { return period_; }

  void add(Member* member);
  void remove(Member* member);
  std::size_t size() const { return members_.size(); }

 private:
  void arm();
  void tick();

  boost::asio::steady_timer timer_;
  std::chrono::milliseconds period_;
  std::unordered_set<Member*> members_;
  std::vector<Member*> snapshot_;  // reused by tick (capacity kept)
  bool armed_ = false;
};

}  // namespace pi_server::transport
