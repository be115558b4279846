#include "session/ui_dialogs.hpp"

#include <algorithm>

namespace pi_server::session {

UiDialogs::UiDialogs(Scheduler& scheduler, std::size_t max_pending,
                     std::chrono::milliseconds timeout, OnCancel on_cancel)
    : scheduler_(scheduler),
      max_pending_(max_pending),
      timeout_(timeout),
      on_cancel_(std::move(on_cancel)) {}

UiDialogs::~UiDialogs() {
  for (const auto& [id, handle] : timers_) scheduler_.cancel(handle);
  for (const auto& [n, handle] : deferred_) scheduler_.cancel(handle);
}

bool UiDialogs::waits_for_answer(std::string_view method) {
  return method == "select" || method == "confirm" || method == "input" || method == "editor";
}

UiDialogs::Track UiDialogs::track(const std::string& ui_id,
                                  std::optional<std::uint64_t> own_timeout_ms) {
  if (timers_.count(ui_id)) return Track::already_pending;
  if (timers_.size() >= max_pending_) {
    std::uint64_t n = next_deferred_++;
    deferred_[n] = scheduler_.schedule(std::chrono::milliseconds(0), [this, n, ui_id] {
      deferred_.erase(n);
      on_cancel_(ui_id, "too_many_pending");
    });
    return Track::over_limit;
  }
  auto timeout = timeout_;
  bool resolves_itself = false;
  if (own_timeout_ms && std::chrono::milliseconds(*own_timeout_ms + 1000) <= timeout) {
    timeout = std::chrono::milliseconds(*own_timeout_ms + 1000);
    resolves_itself = true;
  }
  timers_[ui_id] = scheduler_.schedule(timeout, [this, ui_id, resolves_itself] {
    timers_.erase(ui_id);  // fired: nothing left to cancel
    order_.erase(std::remove(order_.begin(), order_.end(), ui_id), order_.end());
    if (!resolves_itself) on_cancel_(ui_id, "timeout");
  });
  order_.push_back(ui_id);
  return Track::added;
}

bool UiDialogs::forget(const std::string& ui_id) {
  auto it = timers_.find(ui_id);
  bool was_pending = it != timers_.end();
  if (was_pending) {
    scheduler_.cancel(it->second);
    timers_.erase(it);
  }
  order_.erase(std::remove(order_.begin(), order_.end(), ui_id), order_.end());
  return was_pending;
}

bool UiDialogs::cancel(const std::string& ui_id, std::string_view reason) {
  if (!forget(ui_id)) return false;
  on_cancel_(ui_id, reason);
  return true;
}

void UiDialogs::cancel_all(std::string_view reason) {
  auto ids = order_;
  for (const auto& ui_id : ids) cancel(ui_id, reason);
}

}  // namespace pi_server::session
