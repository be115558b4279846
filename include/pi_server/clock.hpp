#pragma once
// Time and timers behind interfaces (STYLE §6): the reliability logic computes deadlines
// from a Clock and asks a Scheduler for callbacks, so unit tests drive it with a manual
// clock and fire timers in order without sleeping.
#include <chrono>
#include <cstdint>
#include <functional>

namespace pi_server {

using SteadyTime = std::chrono::steady_clock::time_point;  // to measure intervals
using SystemTime = std::chrono::system_clock::time_point;  // to show to users

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steady_now() const = 0;
  virtual SystemTime system_now() const = 0;
};

class SystemClock : public Clock {
 public:
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  SystemTime system_now() const override { return std::chrono::system_clock::now(); }
};

// One-shot timers on the event loop.
class Scheduler {
 public:
  using Handle = std::uint64_t;
  virtual ~Scheduler() = default;
  // Runs `fn` on the loop after `delay` unless cancelled. Never runs it synchronously.
  virtual Handle schedule(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  // Cancelling an unknown or already fired handle does nothing.
  virtual void cancel(Handle handle) = 0;
};

}  // namespace pi_server
