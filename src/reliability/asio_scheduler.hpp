#pragma once
// The Scheduler on a real io_context: one steady_timer per pending callback.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <unordered_map>

#include "pi_server/clock.hpp"

namespace pi_server::reliability {

class AsioScheduler : public Scheduler {
 public:
  explicit AsioScheduler(boost::asio::io_context& io) : io_(io) {}
  Handle schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    Handle h = next_++;
    auto timer = std::make_unique<boost::asio::steady_timer>(io_, delay);
    timer->async_wait([this, h, fn = std::move(fn), alive = std::weak_ptr<int>(alive_)](
                          boost::system::error_code ec) {
      if (ec || alive.expired()) return;
      timers_.erase(h);
      fn();
    });
    timers_.emplace(h, std::move(timer));
    return h;
  }
  void cancel(Handle h) override { timers_.erase(h); }

 private:
  boost::asio::io_context& io_;
  Handle next_ = 1;
  std::unordered_map<Handle, std::unique_ptr<boost::asio::steady_timer>> timers_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace pi_server::reliability
