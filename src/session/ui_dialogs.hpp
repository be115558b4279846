#pragma once
// The extension UI dialogs of one session that wait for an answer: their ids in arrival
// order, a timer each, a bound on how many may wait, and the rule for dialogs that carry
// their own timeout. The owner (Session) writes to the agent and tells subscribers: it gets
// every cancellation through OnCancel.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pi_server/clock.hpp"

namespace pi_server::session {

class UiDialogs {
 public:
  // A dialog was dismissed on the agent's behalf (it is no longer pending when this runs).
  // `reason`: "timeout", "too_many_pending", or what cancel()/cancel_all() were given.
  using OnCancel = std::function<void(const std::string& ui_id, std::string_view reason)>;

  UiDialogs(Scheduler& scheduler, std::size_t max_pending, std::chrono::milliseconds timeout,
            OnCancel on_cancel);
  // Cancels its timers: nothing fires after the table is gone.
  ~UiDialogs();
  UiDialogs(const UiDialogs&) = delete;
  UiDialogs& operator=(const UiDialogs&) = delete;

  // Only these extension_ui_request methods wait for an answer; notify, setStatus,
  // setWidget, setTitle and set_editor_text are fire-and-forget.
  static bool waits_for_answer(std::string_view method);

  enum class Track {
    added,            // pending, with a timer
    already_pending,  // the id is pending already: nothing changed
    over_limit,       // max_pending wait already: it is cancelled ("too_many_pending") on a
                      // later turn of the loop, so subscribers see the request first
  };
  // A dialog request arrived. `own_timeout_ms` is the request's own "timeout" field: when it
  // ends (plus a second of slack) before our timeout, pi resolves the dialog itself and
  // writes nothing, so the dialog is just forgotten then; otherwise it is cancelled
  // ("timeout") after the table's timeout.
  Track track(const std::string& ui_id, std::optional<std::uint64_t> own_timeout_ms);

  bool pending(const std::string& ui_id) const { return timers_.count(ui_id) > 0; }
  // Stops tracking a dialog (answered). False if it was not pending.
  bool forget(const std::string& ui_id);
  // Forgets a pending dialog and reports it to OnCancel. False if it was not pending.
  bool cancel(const std::string& ui_id, std::string_view reason);
  // Cancels every pending dialog, oldest first.
  void cancel_all(std::string_view reason);

  // Pending ids, oldest first.
  std::vector<std::string> ids() const { return {order_.begin(), order_.end()}; }
  std::size_t size() const { return order_.size(); }

 private:
  Scheduler& scheduler_;
  std::size_t max_pending_;
  std::chrono::milliseconds timeout_;
  OnCancel on_cancel_;
  std::map<std::string, Scheduler::Handle> timers_;  // pending dialogs and their timers
  std::deque<std::string> order_;
  // Cancellations of over-limit requests, not run yet (by a local number).
  std::map<std::uint64_t, Scheduler::Handle> deferred_;
  std::uint64_t next_deferred_ = 1;
};

}  // namespace pi_server::session
