#include "session/hibernation.hpp"

#include <algorithm>
#include <vector>

#include "observability/log.hpp"

namespace pi_server::session {
namespace {

using std::chrono::milliseconds;

double seconds_between(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Hibernation::Hibernation(const Clock& clock, Scheduler& scheduler,
                         const HibernationOptions& options, const Sessions& sessions)
    : clock_(clock), scheduler_(scheduler), options_(options), sessions_(sessions) {}

Hibernation::~Hibernation() {
  for (auto& [id, handle] : timers_) scheduler_.cancel(handle);
}

std::size_t Hibernation::hibernated_count() const {
  std::size_t n = 0;
  for (const auto& [id, s] : sessions_) n += s->dormancy() != Session::Dormancy::awake;
  return n;
}

void Hibernation::on_quiet(const std::shared_ptr<Session>& session) {
  if (options_.after.count() > 0) arm(session, options_.after);
  enforce_live_cap(session.get());
}

void Hibernation::forget(const std::string& session_id) {
  if (auto it = timers_.find(session_id); it != timers_.end()) {
    scheduler_.cancel(it->second);
    timers_.erase(it);
  }
}

void Hibernation::arm(const std::shared_ptr<Session>& session, milliseconds delay) {
  forget(session->id());
  std::weak_ptr<Session> weak = session;
  timers_[session->id()] = scheduler_.schedule(
      delay, [this, weak, alive = std::weak_ptr<int>(alive_)] {
        if (!alive.expired()) on_timer(weak);
      });
}

void Hibernation::on_timer(const std::weak_ptr<Session>& weak) {
  auto session = weak.lock();
  if (!session) return;
  timers_.erase(session->id());
  auto it = sessions_.find(session->id());
  if (it == sessions_.end() || it->second != session) return;  // deleted
  if (session->dormancy() != Session::Dormancy::awake) return;
  if (!session->idle()) {
    // Busy (or its agent is restarting): look again after a full period; going quiet re-arms.
    arm(session, options_.after);
    return;
  }
  auto idle_for = clock_.steady_now() - session->last_active();
  if (idle_for < options_.after) {
    arm(session, std::chrono::duration_cast<milliseconds>(options_.after - idle_for) +
                     milliseconds(1));
    return;
  }
  hibernate(session, "idle");
}

bool Hibernation::hibernate(const std::shared_ptr<Session>& session, std::string_view reason) {
  if (!session->idle()) return false;
  forget(session->id());
  log::info("session_hibernating",
            {{"session", session->id()},
             {"reason", reason},
             {"idleMs", std::chrono::duration_cast<milliseconds>(clock_.steady_now() -
                                                                 session->last_active())
                            .count()}});
  sleep(session);
  return true;
}

void Hibernation::sleep(const std::shared_ptr<Session>& session) {
  std::weak_ptr<Session> weak = session;
  session->hibernate([this, weak, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    auto s = weak.lock();
    if (!s) return;
    ++stats_.hibernations;
    log::info("session_hibernated", {{"session", s->id()}});
    s->send_to_subscribers(make_frame(
        protocol::server_event("session_hibernated", {{"sessionId", s->id()}})));
    // Commands came while the agent was stopping: wake it again, on a later turn (this runs
    // inside the old agent's exit handling).
    scheduler_.schedule(milliseconds(0), [this, weak, alive] {
      auto s = weak.lock();
      if (alive.expired() || !s) return;
      if (s->stopping()) return finish_wake(*s, Status::error(ErrorCode::session_not_found,
                                                              "The session was deleted"));
      if (s->dormancy() == Session::Dormancy::hibernated && waking_since_.count(s->id())) wake(s);
    });
  });
}

void Hibernation::ensure_awake(const std::shared_ptr<Session>& session,
                               std::function<void(Status)> then) {
  using D = Session::Dormancy;
  D state = session->dormancy();
  if (state == D::awake) return then(Status::ok());
  session->add_wake_waiter(std::move(then));
  waking_since_.try_emplace(session->id(), clock_.steady_now());
  // hibernating: the hibernation's end wakes it; waking: one wake-up serves every waiter.
  if (state == D::hibernated) wake(session);
}

void Hibernation::wake(const std::shared_ptr<Session>& session) {
  session->set_dormancy(Session::Dormancy::waking);
  log::info("session_waking", {{"session", session->id()}});
  if (wake_source_.take) {
    if (auto pooled = wake_source_.take(*session)) return wake_on(session, std::move(*pooled));
  }
  if (auto started = session->start_agent(); !started) {
    session->set_dormancy(Session::Dormancy::hibernated);
    ++stats_.wake_failures;
    log::warn("session_wake_failed", {{"session", session->id()}, {"error", started.message()}});
    return finish_wake(*session, Status::error(ErrorCode::agent_exited,
                                               "Could not wake the session's agent: " +
                                                   started.message()));
  }
  std::weak_ptr<Session> weak = session;
  session->probe([this, weak, alive = std::weak_ptr<int>(alive_)](protocol::Response state) {
    auto s = weak.lock();
    if (alive.expired() || !s) return;
    if (!state.success) return wake_failed(s, state.error.value_or("no answer"));
    woke(s, false);
  });
}

void Hibernation::wake_on(const std::shared_ptr<Session>& session, PooledAgent pooled) {
  std::filesystem::path old_dir = session->launch().agent_dir;
  session->adopt_agent(pooled.agent, pooled.bind);
  // Its later restarts (a crash, the next wake-up without a pooled agent) use the dir the
  // agent runs on; the old one is the hibernated agent's, gone with it.
  session->set_agent_dir(pooled.agent_dir);
  if (wake_source_.release_agent_dir && old_dir != pooled.agent_dir)
    wake_source_.release_agent_dir(*session, old_dir);
  log::info("agent_from_pool", {{"session", session->id()}, {"pid", pooled.agent->pid()},
                                {"cwd", session->launch().cwd}});
  // pi opens the file as on a cold start with --session: the conversation, model, thinking
  // level and name come back, the cwd named in its header is where tools run, and new files
  // go next to it (the session's dir).
  protocol::Envelope sw;
  sw.type = "switch_session";
  sw.spec = &protocol::spec_for(sw.type);
  sw.body = nlohmann::json{{"type", "switch_session"},
                           {"sessionPath", session->launch().session_file.string()}};
  std::weak_ptr<Session> weak = session;
  session->relay(sw, [this, weak, placeholder = pooled.placeholder_file,
                      alive = std::weak_ptr<int>(alive_)](protocol::Response r) {
    if (!placeholder.empty()) {
      // The pool's warm-up file: the agent left it, or is being stopped (it wrote nothing).
      std::error_code ec;
      std::filesystem::remove(placeholder, ec);
    }
    auto s = weak.lock();
    if (alive.expired() || !s) return;
    if (!r.success) return wake_failed(s, r.error.value_or("no answer"));
    if (r.data && r.data->value("cancelled", false))
      return wake_failed(s, "the switch to the session file was cancelled");
    woke(s, true);
  });
}

void Hibernation::wake_failed(const std::shared_ptr<Session>& s, const std::string& why) {
  ++stats_.wake_failures;
  log::warn("session_wake_failed", {{"session", s->id()}, {"error", why}});
  // Back to sleep: an agent that answered badly is stopped; one that died is gone.
  if (s->agent_running() && !s->stopping())
    sleep(s);
  else
    s->set_dormancy(Session::Dormancy::hibernated);
  finish_wake(*s, Status::error(ErrorCode::agent_exited, "The session's agent did not wake: " + why));
}

void Hibernation::woke(const std::shared_ptr<Session>& s, bool from_pool) {
  s->set_dormancy(Session::Dormancy::awake);
  auto now = clock_.steady_now();
  SteadyTime since = now;
  if (auto it = waking_since_.find(s->id()); it != waking_since_.end()) since = it->second;
  auto wake_ms = std::chrono::duration_cast<milliseconds>(now - since).count();
  ++stats_.wakes;
  stats_.wakes_from_pool += from_pool;
  stats_.wake_time.observe(seconds_between(since, now));
  log::info("session_woken", {{"session", s->id()}, {"wakeMs", wake_ms}, {"pid", *s->agent_pid()},
                              {"fromPool", from_pool}});
  s->send_to_subscribers(make_frame(protocol::server_event(
      "session_woken", {{"sessionId", s->id()}, {"wakeMs", wake_ms}, {"fromPool", from_pool}})));
  finish_wake(*s, Status::ok());
  on_quiet(s);
}

void Hibernation::finish_wake(Session& session, Status status) {
  waking_since_.erase(session.id());
  for (auto& waiter : session.take_wake_waiters()) waiter(status);
}

void Hibernation::enforce_live_cap(const Session* keep) {
  if (options_.max_live_agents == 0) return;
  std::size_t live = 0;
  std::vector<std::shared_ptr<Session>> idle;
  for (const auto& [id, s] : sessions_) {
    using D = Session::Dormancy;
    if (s->dormancy() == D::awake ? s->agent_running() : s->dormancy() == D::waking) ++live;
    if (s.get() != keep && s->idle()) idle.push_back(s);
  }
  if (live <= options_.max_live_agents) return;
  std::sort(idle.begin(), idle.end(),
            [](const auto& a, const auto& b) { return a->last_active() < b->last_active(); });
  for (const auto& s : idle) {
    if (live <= options_.max_live_agents) break;
    if (hibernate(s, "max_live_agents")) --live;
  }
}

}  // namespace pi_server::session
