#pragma once
// A clock and scheduler that move only when a test says so; timers fire in deadline order
// (ties in scheduling order), so runs are deterministic.
#include <map>
#include <utility>

#include "pi_server/clock.hpp"

namespace pi_server::testing {

class ManualClock : public Clock, public Scheduler {
 public:
  SteadyTime steady_now() const override { return steady_; }
  SystemTime system_now() const override { return system_; }

  Handle schedule(std::chrono::milliseconds delay, std::function<void()> fn) override {
    Handle h = next_++;
    timers_.emplace(std::make_pair(steady_ + delay, h), std::move(fn));
    return h;
  }
  void cancel(Handle h) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it)
      if (it->first.second == h) {
        timers_.erase(it);
        return;
      }
  }

  // Moves time forward, firing every timer that falls due, in order.
  void advance(std::chrono::milliseconds by) {
    SteadyTime until = steady_ + by;
    while (!timers_.empty() && timers_.begin()->first.first <= until) {
      auto it = timers_.begin();
      auto shift = it->first.first - steady_;
      steady_ = it->first.first;
      system_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(shift);
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    system_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(until - steady_);
    steady_ = until;
  }
  // Fires every timer due now (zero-delay callbacks).
  void run_due() { advance(std::chrono::milliseconds(0)); }
  std::size_t pending_timers() const { return timers_.size(); }

 private:
  SteadyTime steady_{std::chrono::hours(1)};
  SystemTime system_{std::chrono::sys_days{std::chrono::year{2026} / 1 / 1}};
  Handle next_ = 1;
  std::map<std::pair<SteadyTime, Handle>, std::function<void()>> timers_;
};

}  // namespace pi_server::testing
