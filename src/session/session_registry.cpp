#include "session/session_registry.hpp"

#include <algorithm>
#include <filesystem>
#include <random>

#include "agent/pi_setup.hpp"
#include "observability/log.hpp"
#include "pi_server/read_file.hpp"

namespace pi_server::session {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string random_session_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[40];
  std::snprintf(buf, sizeof buf, "s-%016llx%08llx", static_cast<unsigned long long>(dist(rng)),
                static_cast<unsigned long long>(dist(rng) & 0xffffffffu));
  return buf;
}

std::string model_string(const json& model) {
  if (model.is_object() && model.contains("provider") && model.contains("id") &&
      model["provider"].is_string() && model["id"].is_string())
    return model["provider"].get<std::string>() + "/" + model["id"].get<std::string>();
  return {};
}

}  // namespace

SessionRegistry::SessionRegistry(const Clock& clock, Scheduler& scheduler,
                                 agent::AgentLauncher& launcher, const ServerOptions& options,
                                 ConnectionRegistry& connections, RelayStats& relay_stats)
    : scheduler_(scheduler),
      options_(options),
      connections_(connections),
      relay_stats_(relay_stats),
      context_{clock,   scheduler,     launcher, connections, relay_stats,
               *this,   options.agent, options.event_buffer_bytes},
      pool_(scheduler, launcher, options),
      hibernation_(clock, scheduler, options.hibernation, sessions_) {
  hibernation_.set_wake_source(WakeSource{
      .take = [this](const Session& session) -> std::optional<PooledAgent> {
        // Only where a cold start would behave the same: the file exists (pi has written
        // the conversation) and sits in the session's own dir (pi puts new files next to
        // the file it switched to, a cold start in --session-dir).
        const auto& launch = session.launch();
        std::error_code ec;
        if (launch.session_file.empty() || launch.session_file.parent_path() != launch.session_dir ||
            !fs::is_regular_file(launch.session_file, ec))
          return std::nullopt;
        // pi keeps what a session changed (steering mode, auto-retry, ...) in its private
        // settings.json and reads it once, at start: a pooled agent that read another
        // content would silently change them. Only one that read the same may serve.
        std::optional<std::string> settings = read_file(launch.agent_dir / "settings.json");
        return pool_.take(launch, [&settings](const fs::path& pooled_agent_dir) {
          return read_file(pooled_agent_dir / "settings.json") == settings;
        });
      },
      .release_agent_dir =
          [this](const Session& session, const fs::path& old_dir) {
            discard_agent_dir(session.id(), session.launch().session_dir, old_dir);
          },
  });
}

// Sessions left at destruction (the loop has stopped) are destroyed with the registry: each
// Session detaches from its agent and kills its process group. Nothing is answered any more.
SessionRegistry::~SessionRegistry() = default;

void SessionRegistry::bury(std::shared_ptr<Session> session) {
  graveyard_.push_back(std::move(session));
  if (graveyard_.size() > 1) return;  // a clear is already scheduled
  scheduler_.schedule(std::chrono::milliseconds(0), [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) graveyard_.clear();
  });
}

Result<fs::path> SessionRegistry::prepare_session_dirs(const std::string& session_id) {
  // <state>/sessions/<id>/ holds pi's session files; <id>/agent/ is the session's private pi
  // agent dir, built on the operator's (links, and a copy of settings.json).
  fs::path base = options_.state_dir / "sessions" / session_id;
  if (auto prepared = agent::prepare_private_agent_dir(
          base / "agent", options_.agent.base_agent_dir, options_.agent.models_json);
      !prepared)
    return prepared;
  return base;
}

void SessionRegistry::create(std::string session_id, agent::SessionLaunch launch,
                             std::uint64_t creator, const Principal& owner, Created done) {
  launch.owner = owner.name;
  start(std::move(session_id), std::move(launch), creator, nullptr, std::move(done));
}

void SessionRegistry::load(const persistence::StoredSession& row, std::uint64_t creator,
                           Created done) {
  start(row.id, SessionRecords::launch_of(row), creator, &row, std::move(done));
}

void SessionRegistry::start(std::string session_id, agent::SessionLaunch launch,
                            std::uint64_t creator, const persistence::StoredSession* restored,
                            Created done) {
  if (session_id.empty()) {
    do session_id = random_session_id();
    while (sessions_.count(session_id));
  }
  if (sessions_.count(session_id))
    return done(session_id,
                Status::error(ErrorCode::session_exists, "Session already exists: " + session_id));
  if (sessions_.size() + stopping_.size() >= options_.max_sessions)
    return done(session_id, Status::error(ErrorCode::limit_reached,
                                          "Too many sessions (max " +
                                              std::to_string(options_.max_sessions) + ")"));
  if (options_.max_sessions_per_principal > 0 &&
      count_owned_by(launch.owner) >= options_.max_sessions_per_principal)
    return done(session_id, Status::error(ErrorCode::limit_reached,
                                          "Too many sessions for this principal (max " +
                                              std::to_string(options_.max_sessions_per_principal) +
                                              ")"));

  // A stored session comes back on its own file: no pooled agent (it sits on a fresh one).
  auto pooled = restored ? std::nullopt : pool_.take(launch);
  if (pooled) {
    // The pooled agent's dirs become the session's (it runs on them).
    launch.session_dir = pooled->session_dir;
    launch.agent_dir = pooled->agent_dir;
  } else {
    auto dir = prepare_session_dirs(session_id);
    if (!dir) return done(session_id, Status::error(ErrorCode::agent_exited, dir.error()));
    launch.session_dir = *dir;
    launch.agent_dir = *dir / "agent";
  }
  auto session = std::make_shared<Session>(context_, session_id, launch, launch.owner);
  if (restored) {
    auto from_ms = [](std::int64_t ms) {
      return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
    };
    session->restore(restored->session_version, from_ms(restored->created_at_ms),
                     from_ms(restored->last_active_at_ms));
  }
  if (pooled) {
    session->adopt_agent(pooled->agent, pooled->bind);
    log::info("agent_from_pool", {{"session", session_id}, {"pid", pooled->agent->pid()},
                                  {"cwd", launch.cwd}});
  } else if (auto started = session->start_agent(); !started) {
    return done(session_id, Status::error(ErrorCode::agent_exited, started.message()));
  }
  sessions_.emplace(session_id, session);
  // The creator may have gone while the command waited in its lane.
  if (connections_.find(creator)) session->subscribe(creator);

  if (pooled && pooled->cwd == launch.cwd && pooled->state.is_object())
    // Nothing to change, and the pool already asked it get_state: no round trip.
    return answer_created(session, pooled->state, std::move(done));
  if (!pooled || pooled->cwd == launch.cwd) return finish_create(session, std::move(done));
  // Another cwd: pi re-points itself (tools, context files, system prompt) when it switches
  // to a session file whose header names that cwd.
  auto header = write_header_only_session(launch.session_dir, launch.cwd);
  protocol::Envelope sw;
  sw.type = "switch_session";
  sw.spec = &protocol::spec_for(sw.type);
  sw.body = json{{"type", "switch_session"},
                 {"sessionPath", header ? header->path.string() : std::string("/nonexistent")}};
  // What get_state would say now: the pool's answer with the new file and its id (the model
  // and thinking level stay: the header-only file names none). One round trip less, unless
  // a project settings file (<cwd>/.pi/settings.json, which may name a default model) is
  // left or met: then pi is asked.
  auto project_settings = [](const std::string& cwd) {
    std::error_code ec;
    return fs::exists(fs::path(cwd) / ".pi" / "settings.json", ec);
  };
  json state;
  if (header && pooled->state.is_object() && !project_settings(pooled->cwd) &&
      !project_settings(launch.cwd)) {
    state = pooled->state;
    state["sessionFile"] = header->path.string();
    state["sessionId"] = header->id;
  }
  std::weak_ptr<Session> weak = session;
  session->relay(sw, [this, weak, session_id, state = std::move(state), done = std::move(done),
                      placeholder = pooled->placeholder_file,
                      alive = std::weak_ptr<int>(alive_)](protocol::Response r) mutable {
    if (alive.expired()) return;
    auto s = weak.lock();
    bool switched = r.success && (!r.data || !r.data->value("cancelled", false));
    if (!placeholder.empty()) {
      // The pool's warm-up file: the agent left it, or is being stopped (it wrote nothing).
      std::error_code ec;
      fs::remove(placeholder, ec);
    }
    if (s && switched) {
      if (state.is_object()) return answer_created(s, state, std::move(done));
      return finish_create(s, std::move(done));
    }
    if (auto it = sessions_.find(session_id); s && it != sessions_.end() && it->second == s) {
      sessions_.erase(it);
      s->stop([] {});
      bury(s);
    }
    done(session_id, Status::error(ErrorCode::agent_exited,
                                   "The agent could not move to the session's cwd: " +
                                       r.error.value_or("cancelled")));
  });
}

void SessionRegistry::finish_create(const std::shared_ptr<Session>& session, Created done) {
  std::string session_id = session->id();
  // The session is ready when its agent answers a first get_state: that proves the agent
  // runs and tells us its session file and model.
  std::weak_ptr<Session> weak = session;
  session->probe([this, weak, session_id, done = std::move(done),
                         alive = std::weak_ptr<int>(alive_)](protocol::Response state) {
    if (alive.expired()) return;
    auto s = weak.lock();
    if (!state.success || !s) {
      // Out of the registry before `done` lets the next queued command of this lane run
      // (it must see session_not_found); destroyed later, not inside its own callback.
      if (auto it = sessions_.find(session_id); it != sessions_.end() && it->second == s) {
        sessions_.erase(it);
        s->stop([] {});
        bury(s);
      }
      done(session_id, Status::error(ErrorCode::agent_exited,
                                     "The agent did not start: " + state.error.value_or("no answer")));
      return;
    }
    answer_created(s, state.data ? *state.data : json::object(), std::move(done));
  });
}

void SessionRegistry::answer_created(const std::shared_ptr<Session>& s, const json& data,
                                     Created done) {
  std::string session_id = s->id();
  {
    s->mark_ready();
    // From now on the agent resumes this file (restarts, daemon restarts).
    if (auto file = data.find("sessionFile"); file != data.end() && file->is_string())
      s->set_identity(file->get<std::string>(), "", s->launch().name);
    if (records_) records_->save(*s);
    json info = s->summary();
    if (data.contains("sessionFile")) info["sessionFile"] = data["sessionFile"];
    if (data.contains("sessionId")) info["agentSessionId"] = data["sessionId"];
    if (auto m = data.find("model"); m != data.end()) {
      std::string model = model_string(*m);
      if (!model.empty()) info["model"] = model;
    }
    if (data.contains("thinkingLevel")) info["thinkingLevel"] = data["thinkingLevel"];
    done(session_id, std::move(info));
    if (auto it = sessions_.find(session_id); it != sessions_.end() && it->second == s)
      hibernation_.on_quiet(s);
  }
}

void SessionRegistry::stop_and_forget(const std::shared_ptr<Session>& session,
                                      std::function<void()> done) {
  auto* raw = session.get();
  stopping_.emplace(raw, session);
  session->stop([this, raw, done = std::move(done), alive = std::weak_ptr<int>(alive_)] {
    // Runs inside the session's own exit handling: destroy it on a later turn.
    scheduler_.schedule(std::chrono::milliseconds(0), [this, raw, done, alive] {
      if (alive.expired()) return;
      stopping_.erase(raw);
      done();
      if (stopping_.empty() && all_stopped_) std::exchange(all_stopped_, nullptr)();
    });
  });
}

bool SessionRegistry::remove(const std::string& session_id, std::function<void()> done,
                             bool purge) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return false;
  auto session = it->second;
  sessions_.erase(it);
  hibernation_.forget(session_id);
  if (records_) purge ? records_->forget(session_id) : records_->mark_stopped(session_id);
  stop_and_forget(session, [this, session_id, dir = session->launch().session_dir,
                            agent_dir = session->launch().agent_dir, purge, done = std::move(done)] {
    // The agent is gone: nothing writes in its dirs any more.
    discard_agent_dir(session_id, dir, agent_dir);
    clean_session_dirs(session_id, dir, purge);
    done();
  });
  return true;
}

bool SessionRegistry::purge_stored(const std::string& session_id) {
  if (!records_ || !records_->find(session_id) || sessions_.count(session_id)) return false;
  // Its dir is the one its pi session file is in (a pooled agent's dir keeps the pool's
  // name), but only inside <state>/sessions/: a file switched to elsewhere is the user's.
  fs::path sessions = options_.state_dir / "sessions";
  fs::path dir = sessions / session_id;
  fs::path file_dir = fs::path(records_->find(session_id)->session_file).parent_path();
  if (!file_dir.empty() && file_dir.parent_path() == sessions) dir = file_dir;
  records_->forget(session_id);
  clean_session_dirs(session_id, dir, true);
  return true;
}

void SessionRegistry::discard_agent_dir(const std::string& session_id, const fs::path& session_dir,
                                        const fs::path& agent_dir) {
  std::error_code ec;
  fs::remove_all(agent_dir, ec);
  // A pooled agent's dir sat in the pool's own folder: that goes too once empty (a folder
  // holding pi session files stays).
  fs::path folder = agent_dir.parent_path();
  if (!ec && folder != session_dir && folder.parent_path() == options_.state_dir / "sessions" &&
      fs::is_directory(folder, ec) && fs::is_empty(folder, ec))
    fs::remove(folder, ec);
  if (ec) log::warn("session_dir_cleanup_failed", {{"session", session_id}, {"error", ec.message()}});
}

void SessionRegistry::clean_session_dirs(const std::string& session_id, const fs::path& base,
                                         bool purge) {
  std::error_code ec;
  fs::remove_all(base / "agent", ec);
  if (purge && options_.persistence.purge_session_files) {
    fs::remove_all(base, ec);
  } else if (fs::is_directory(base, ec) && fs::is_empty(base, ec)) {
    fs::remove(base, ec);
  }
  if (ec) log::warn("session_dir_cleanup_failed", {{"session", session_id}, {"error", ec.message()}});
}

void SessionRegistry::on_session_changed(Session& session, std::string_view command) {
  if (!records_) return;
  records_->save(session);
  // Commands after which pi may be on another file, model or name: ask it (on a later
  // turn: this runs inside the session's handling of an agent line).
  static constexpr std::string_view kMoves[] = {"new_session", "switch_session_file", "fork",
                                                "clone",       "set_session_name"};
  static constexpr std::string_view kModelChanges[] = {"set_model", "cycle_model"};
  bool moves = std::find(std::begin(kMoves), std::end(kMoves), command) != std::end(kMoves);
  bool model = std::find(std::begin(kModelChanges), std::end(kModelChanges), command) !=
               std::end(kModelChanges);
  if (!moves && !model) return;
  auto it = sessions_.find(session.id());
  if (it == sessions_.end() || it->second.get() != &session) return;
  std::weak_ptr<Session> weak = it->second;
  scheduler_.schedule(std::chrono::milliseconds(0), [this, weak, model, alive = std::weak_ptr<int>(alive_)] {
    auto s = weak.lock();
    if (!alive.expired() && s) refresh_identity(s, model);
  });
}

void SessionRegistry::refresh_identity(const std::shared_ptr<Session>& session, bool model_changed) {
  protocol::Envelope probe;
  probe.type = "get_state";
  probe.spec = &protocol::spec_for(probe.type);
  probe.body = json{{"type", "get_state"}};
  std::weak_ptr<Session> weak = session;
  session->relay(probe, [this, weak, model_changed, alive = std::weak_ptr<int>(alive_)](protocol::Response state) {
    auto s = weak.lock();
    if (alive.expired() || !s || !state.success || !state.data || !records_) return;
    const json& data = *state.data;
    std::string file = data.value("sessionFile", s->launch().session_file.string());
    // The model pi reports is taken only after a model change: a session whose model came
    // from the defaults keeps following them.
    std::string model = model_changed && data.contains("model") ? model_string(data["model"]) : "";
    // pi leaves sessionName out when the file it is on has none.
    std::string name = data.contains("sessionName") && data["sessionName"].is_string()
                           ? data["sessionName"].get<std::string>()
                           : std::string();
    s->set_identity(file, model, name);
    if (sessions_.count(s->id())) records_->save(*s);
  });
}

void SessionRegistry::stop_all(std::function<void()> done) {
  stopped_all_ = true;
  pool_.stop_all();
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (auto& [id, s] : sessions) {
    hibernation_.forget(id);
    stop_and_forget(s, [] {});
  }
  // Sessions deleted just before are still stopping: they count too.
  if (stopping_.empty()) return done();
  all_stopped_ = std::move(done);
}

std::shared_ptr<Session> SessionRegistry::find(const std::string& session_id) const {
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? nullptr : it->second;
}

std::shared_ptr<Session> SessionRegistry::find_for(const std::string& session_id,
                                                  const Principal& asker) const {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || !it->second->visible_to(asker)) return nullptr;
  return it->second;
}

bool SessionRegistry::folder_visible_to(std::string_view folder, const Principal& asker) const {
  for (const auto& [id, s] : sessions_)
    if (s->launch().session_dir.filename() == folder) return s->visible_to(asker);
  return false;
}

bool SessionRegistry::hidden_from(const std::string& session_id, const Principal& asker) const {
  auto it = sessions_.find(session_id);
  return it != sessions_.end() && !it->second->visible_to(asker);
}

std::size_t SessionRegistry::count_owned_by(const std::string& principal_name) const {
  std::size_t n = 0;
  for (const auto& [id, s] : sessions_) n += s->owner() == principal_name;
  for (const auto& [raw, s] : stopping_) n += s->owner() == principal_name;
  return n;
}

bool SessionRegistry::all_quiet() const {
  for (const auto& [id, s] : sessions_)
    if (!s->quiet()) return false;
  return true;
}

json SessionRegistry::summaries(const Principal& asker) const {
  json list = json::array();
  for (const auto& [id, s] : sessions_)
    if (s->visible_to(asker)) list.push_back(s->summary());
  return list;
}

void SessionRegistry::unsubscribe_everywhere(std::uint64_t connection_id) {
  for (auto& [id, s] : sessions_) s->unsubscribe(connection_id);
}

std::optional<std::uint64_t> SessionRegistry::session_version(const std::string& session_id,
                                                               const Principal& asker) const {
  auto s = find_for(session_id, asker);
  if (!s) return std::nullopt;
  return s->version();
}

std::string SessionRegistry::provider_of(const std::string& session_id,
                                         const Principal& asker) const {
  auto s = find_for(session_id, asker);
  return s ? s->provider() : std::string();
}

void SessionRegistry::on_session_quiet(Session& session) {
  auto it = sessions_.find(session.id());
  if (it != sessions_.end() && it->second.get() == &session) hibernation_.on_quiet(it->second);
}

void SessionRegistry::on_provider_result(Session&, const std::string& provider,
                                         ProviderResult result) {
  if (feedback_) feedback_->on_provider_result(provider, result);
}

void SessionRegistry::on_run_finished(Session&, const std::string& provider,
                                      std::chrono::steady_clock::duration length) {
  if (feedback_) feedback_->on_run_finished(provider, length);
}

// ---------------------------------------------------------------- agent supervision

void SessionRegistry::on_agent_exited(Session& session, const agent::ExitStatus& status) {
  auto it = sessions_.find(session.id());
  std::shared_ptr<Session> owned =
      it != sessions_.end() && it->second.get() == &session ? it->second : nullptr;
  std::chrono::milliseconds delay{0};
  bool restarting = owned && session.ready() && options_.agent.restart && !stopped_all_ &&
                    session.claim_restart(delay);
  json data = {{"sessionId", session.id()}, {"restarting", restarting}};
  if (status.exit_code) data["exitCode"] = *status.exit_code;
  if (status.signal) data["signal"] = *status.signal;
  session.send_to_subscribers(make_frame(protocol::server_event("agent_exited", data)));
  if (restarting) schedule_restart(owned, delay);
}

void SessionRegistry::schedule_restart(const std::shared_ptr<Session>& session,
                                       std::chrono::milliseconds delay) {
  log::info("agent_restart_scheduled", {{"session", session->id()}, {"delayMs", delay.count()}});
  std::weak_ptr<Session> weak = session;
  scheduler_.schedule(delay, [this, weak, alive = std::weak_ptr<int>(alive_)] {
    auto s = weak.lock();
    if (alive.expired() || !s || stopped_all_) return;
    auto it = sessions_.find(s->id());
    if (it == sessions_.end() || it->second != s) return;  // deleted meanwhile
    if (auto started = s->start_agent(); !started) {
      std::chrono::milliseconds next{0};
      bool again = s->claim_restart(next);
      s->send_to_subscribers(make_frame(protocol::server_event(
          "agent_exited",
          {{"sessionId", s->id()}, {"restarting", again}, {"error", started.message()}})));
      if (again) schedule_restart(s, next);
      return;
    }
    ++agent_restarts_;
    s->send_to_subscribers(make_frame(protocol::server_event(
        "agent_restarted",
        {{"sessionId", s->id()}, {"pid", *s->agent_pid()}, {"restarts", s->restarts_total()}})));
  });
}

}  // namespace pi_server::session
