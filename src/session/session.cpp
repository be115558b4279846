#include "session/session.hpp"

#include <algorithm>
#include <charconv>

#include "observability/log.hpp"
#include "protocol/commands.hpp"
#include "protocol/json_scan.hpp"

namespace pi_server::session {
namespace {

std::string iso_time(SystemTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string describe(const agent::ExitStatus& s) {
  if (s.exit_code) return "exit code " + std::to_string(*s.exit_code);
  if (s.signal) return "signal " + std::to_string(*s.signal);
  return "unknown status";
}

}  // namespace

Session::Session(SessionContext& context, std::string id, agent::SessionLaunch launch,
                 std::string owner)
    : clock_(context.clock),
      launcher_(context.launcher),
      connections_(context.connections),
      stats_(context.stats),
      observer_(context.observer),
      agent_options_(context.agent_options),
      id_(std::move(id)),
      owner_(std::move(owner)),
      quoted_id_(protocol::json_quote(id_)),
      launch_(std::move(launch)),
      ring_(context.event_buffer_bytes),
      ui_(context.scheduler, context.agent_options.max_pending_ui, context.agent_options.ui_timeout,
          [this](const std::string& ui_id, std::string_view reason) {
            on_ui_cancelled(ui_id, reason);
          }),
      created_at_(clock_.system_now()),
      last_activity_at_(created_at_),
      last_active_(clock_.steady_now()) {
  launch_.session_id = id_;
  const std::string& model = launch_.model.empty() ? agent_options_.default_model : launch_.model;
  // "provider/id"; a bare model id names no provider until the agent reports one.
  auto slash = model.find('/');
  if (slash != std::string::npos) provider_ = model.substr(0, slash);
}

Session::~Session() {
  if (agent_) {
    agent_->detach();
    agent_->kill_now();
  }
}

std::optional<pid_t> Session::agent_pid() const {
  if (!agent_) return std::nullopt;
  return agent_->pid();
}

agent::AgentCallbacks Session::make_callbacks() {
  agent::AgentCallbacks callbacks;
  callbacks.on_line = [this](std::string_view line) { on_agent_line(line); };
  callbacks.on_oversize_line = [this](std::size_t bytes) {
    ++stats_.agent_lines_oversize;
    log::warn("agent_line_too_long", {{"session", id_}, {"bytes", bytes},
                                      {"limit", agent_options_.max_line_bytes}});
  };
  callbacks.on_stderr_line = [this](std::string_view line) { on_agent_stderr(line); };
  callbacks.on_exit = [this](agent::ExitStatus status) { on_agent_exit(status); };
  return callbacks;
}

void Session::adopt_agent(std::shared_ptr<agent::AgentChannel> agent,
                          const std::function<void(agent::AgentCallbacks)>& bind) {
  bind(make_callbacks());
  agent_ = std::move(agent);
}

Status Session::start_agent() {
  auto launched = launcher_.launch(agent_options_, launch_, make_callbacks());
  if (!launched) return launched.status();
  agent_ = std::move(launched.value());
  return Status::ok();
}

void Session::relay(const protocol::Envelope& envelope, Completion done) {
  touch();
  if (!agent_running() || stopping_) {
    auto r = protocol::error_response(envelope.type, envelope.id, ErrorCode::agent_exited,
                                      "The session's agent is not running");
    r.session_id = id_;
    done(std::move(r));
    return;
  }
  if (pending_.size() >= kMaxPendingCommands) {
    // A wedged agent: commands time out in the pipeline but stay pending here until the agent
    // answers or exits; refuse more rather than grow without bound.
    auto r = protocol::error_response(envelope.type, envelope.id, ErrorCode::limit_reached,
                                      "Too many commands waiting for this session's agent");
    r.session_id = id_;
    done(std::move(r));
    return;
  }
  // pi does not answer abort while a tool waits in an open dialog: dismiss the session's
  // dialogs first so the abort can complete.
  if (envelope.type == "abort") ui_.cancel_all("aborted");
  std::string agent_id = "pi-server-" + std::to_string(next_agent_id_++);
  agent_->write_line(protocol::agent_command_line(envelope, agent_id));
  pending_.emplace(std::move(agent_id), Pending{envelope.type, envelope.id, std::move(done)});
}

void Session::on_agent_line(std::string_view line) {
  auto head = protocol::scan_agent_line(line);
  if (!head.is_object) {
    ++stats_.agent_lines_invalid;
    log::warn("agent_line_invalid", {{"session", id_}, {"bytes", line.size()}});
    return;
  }
  if (head.type == "response") {
    on_agent_response(line, head.raw_id);
  } else {
    on_agent_event(line, head.type, head.raw_id);
  }
}

void Session::on_agent_response(std::string_view line, std::string_view raw_id) {
  auto id = protocol::simple_string(raw_id);
  auto it = id ? pending_.find(std::string(*id)) : pending_.end();
  if (it == pending_.end()) {
    // Not ours (or already answered): never deliver it to anyone.
    ++stats_.agent_responses_unmatched;
    log::warn("agent_response_unmatched", {{"session", id_}, {"bytes", line.size()}});
    return;
  }
  Pending pending = std::move(it->second);
  pending_.erase(it);

  auto body = protocol::nests_deeper_than(line, protocol::kMaxJsonDepth)
                  ? nlohmann::json(nlohmann::json::value_t::discarded)
                  : nlohmann::json::parse(line, nullptr, false);
  protocol::Response r;
  r.command = pending.client_type;
  r.id = pending.client_id;
  r.session_id = id_;
  if (body.is_discarded()) {
    r = protocol::error_response(pending.client_type, pending.client_id,
                                 ErrorCode::invalid_command, "The agent sent an unreadable answer");
    r.session_id = id_;
  } else {
    auto success = body.find("success");
    r.success = success != body.end() && success->is_boolean() && success->get<bool>();
    if (auto d = body.find("data"); d != body.end()) r.data = std::move(*d);
    if (auto e = body.find("error"); e != body.end())
      r.error = e->is_string() ? e->get<std::string>() : protocol::dump(*e);
    // pi's answer to a type it does not know has no code: give it the one ours has.
    if (!r.success && r.error && r.error->starts_with("Unknown command"))
      r.code = ErrorCode::unknown_command;
  }
  if (r.success && protocol::bumps_session_version(pending.client_type)) {
    ++version_;
    observer_.on_session_changed(*this, pending.client_type);
  }
  // pi answers prompt before its agent_start: the run is under way from this moment until
  // agent_settled, and the session must not look quiet in between (stdio drain waits on it).
  if (r.success && pending.client_type == "prompt") running_ = true;
  r.session_version = version_;
  touch();
  pending.done(std::move(r));
  if (quiet()) observer_.on_session_quiet(*this);
}

void Session::on_agent_event(std::string_view line, std::string_view type, std::string_view raw_id) {
  std::string rewritten;
  if (type == "agent_start") {
    if (!running_ || run_started_ == SteadyTime{}) run_started_ = clock_.steady_now();
    running_ = true;
  } else if (type == "agent_settled") {
    running_ = false;
    touch();
    if (run_started_ != SteadyTime{}) {
      auto length = clock_.steady_now() - run_started_;
      run_started_ = {};
      observer_.on_run_finished(*this, provider_, length);
    }
  } else if (type == "compaction_start") {
    compacting_ = true;
  } else if (type == "compaction_end") {
    compacting_ = false;
  } else if (type == "message_end") {
    observe_message_end(line);
  } else if (type == "extension_ui_request") {
    track_ui_request(line, raw_id);
  } else if (!raw_id.empty()) {
    // bash_execution_update echoes the id of its bash command: our agent-side id, which
    // must become the client's own again.
    rewritten = client_event_line(line, raw_id);
    line = rewritten;
  }
  // WebSocket text frames must be UTF-8; an agent can print anything. The check is one
  // pass over the bytes; the rare bad line gets U+FFFD for each bad byte.
  if (!protocol::is_valid_utf8(line)) {
    rewritten = protocol::sanitize_utf8(line);
    line = rewritten;
    log::debug("agent_line_utf8_repaired", {{"session", id_}, {"bytes", line.size()}});
  }
  std::uint64_t seq = next_seq_++;
  Frame frame = make_frame(protocol::wrap_event(quoted_id_, seq, line));
  ++stats_.events_relayed;
  // The buffer shares the frame with the outbound queues: no copy.
  ring_.push(seq, frame);
  if (holds_ > 0) {
    held_.emplace_back(seq, std::move(frame));
  } else {
    send_event(seq, frame);
  }
  if (type == "agent_settled" && quiet()) observer_.on_session_quiet(*this);
}

void Session::send_event(std::uint64_t seq, const Frame& frame) {
  for (auto conn_id : subscribers_) {
    if (Connection* c = connections_.find(conn_id)) {
      switch (c->send_event(frame, id_, seq)) {
        case SendStatus::queued: stats_.event_bytes_relayed += frame->size(); break;
        case SendStatus::dropped: ++stats_.events_dropped; break;
        case SendStatus::closed: break;
      }
    }
  }
}

void Session::release_events() {
  if (holds_ == 0 || --holds_ > 0) return;
  auto held = std::move(held_);
  held_.clear();
  for (const auto& [seq, frame] : held) {
    if (seq == 0) send_to_subscribers(frame);
    else send_event(seq, frame);
  }
}

void Session::observe_message_end(std::string_view line) {
  // Three small scans per assistant message, not per delta: message_end is rare.
  std::string_view message;
  protocol::scan_object(line, [&](std::string_view key, std::string_view value) {
    if (key == "message") message = value;
    return true;
  });
  std::string_view role, stop_reason, provider;
  protocol::scan_object(message, [&](std::string_view key, std::string_view value) {
    if (key == "role") role = protocol::simple_string(value).value_or("");
    if (key == "stopReason") stop_reason = protocol::simple_string(value).value_or("");
    if (key == "provider") provider = protocol::simple_string(value).value_or("");
    return true;
  });
  if (role != "assistant") return;
  if (!provider.empty()) provider_ = std::string(provider);
  using R = SessionObserver::ProviderResult;
  R result = stop_reason == "error" ? R::failure : stop_reason == "aborted" ? R::aborted : R::success;
  observer_.on_provider_result(*this, provider_, result);
}

std::string Session::client_event_line(std::string_view line, std::string_view raw_id) {
  auto id = protocol::simple_string(raw_id);
  auto it = id ? pending_.find(std::string(*id)) : pending_.end();
  if (it == pending_.end()) return std::string(line);
  if (it->second.client_id) {
    // raw_id points into line: splice the client's id in place, no re-serialization.
    std::size_t at = static_cast<std::size_t>(raw_id.data() - line.data());
    std::string out;
    out.reserve(line.size() + it->second.client_id->size());
    out.append(line.substr(0, at))
        .append(protocol::json_quote(*it->second.client_id))
        .append(line.substr(at + raw_id.size()));
    return out;
  }
  // The client sent no id: the event carries none either.
  if (protocol::nests_deeper_than(line, protocol::kMaxJsonDepth)) return std::string(line);
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return std::string(line);
  j.erase("id");
  return protocol::dump(j);
}

void Session::track_ui_request(std::string_view line, std::string_view raw_id) {
  std::string_view method;
  std::optional<std::uint64_t> own_timeout_ms;
  protocol::scan_object(line, [&](std::string_view key, std::string_view value) {
    if (key == "method") {
      if (auto m = protocol::simple_string(value)) method = *m;
    } else if (key == "timeout") {
      std::uint64_t ms = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
      if (ec == std::errc() && end == value.data() + value.size()) own_timeout_ms = ms;
    }
    return true;
  });
  if (!UiDialogs::waits_for_answer(method)) return;
  auto ui_id = protocol::simple_string(raw_id);
  if (!ui_id || ui_id->empty()) return;
  if (ui_.track(std::string(*ui_id), own_timeout_ms) == UiDialogs::Track::over_limit) {
    // The event still reaches subscribers (they see the request); ui_ dismisses it right after.
    log::warn("ui_request_over_limit", {{"session", id_}, {"limit", agent_options_.max_pending_ui}});
  }
}

void Session::on_ui_cancelled(const std::string& ui_id, std::string_view reason) {
  if (agent_running())
    agent_->write_line(protocol::dump(
        nlohmann::json{{"type", "extension_ui_response"}, {"id", ui_id}, {"cancelled", true}}));
  log::info("ui_request_cancelled", {{"session", id_}, {"reason", reason}});
  send_to_subscribers(make_frame(protocol::server_event(
      "extension_ui_cancelled", {{"sessionId", id_}, {"id", ui_id}, {"reason", reason}})));
}

void Session::send_to_subscribers(const Frame& frame) {
  if (holds_ > 0) {
    held_.emplace_back(0, frame);  // seq 0: a server event, after the events before it
    return;
  }
  for (auto conn_id : subscribers_)
    if (Connection* c = connections_.find(conn_id)) c->send_control(frame);
}

namespace {

// What pi's extension_ui_response wants: {id, value | confirmed | cancelled}. Clients send
// pi's shape (the dialog id as uiRequestId, or as the command id) or protocol 1.x's:
// {requestId, response: {method, value | confirmed | ...}}, where method "cancelled" means
// dismissed.
nlohmann::json ui_answer_for_pi(const nlohmann::json& body, const std::string& ui_id) {
  nlohmann::json answer = nlohmann::json::object();
  const nlohmann::json* fields = &body;
  if (auto r = body.find("response"); r != body.end() && r->is_object()) {
    fields = &*r;
    if (r->value("method", "") == "cancelled") answer["cancelled"] = true;
  }
  for (const char* key : {"value", "confirmed", "cancelled"})
    if (auto it = fields->find(key); it != fields->end()) answer[key] = *it;
  answer["type"] = "extension_ui_response";
  answer["id"] = ui_id;
  return answer;
}

}  // namespace

void Session::answer_ui(const protocol::Envelope& envelope, Completion done) {
  const auto& body = envelope.body;
  // The dialog's id travels as the command's "id" in pi's protocol; on ours "id" is the
  // command id, so the dialog id may also be given as "uiRequestId" (or 1.x's "requestId").
  std::string ui_id;
  if (auto it = body.find("uiRequestId"); it != body.end() && it->is_string()) {
    ui_id = it->get<std::string>();
  } else if (auto it = body.find("requestId"); it != body.end() && it->is_string()) {
    ui_id = it->get<std::string>();
  } else if (envelope.id) {
    ui_id = *envelope.id;
  }
  protocol::Response r;
  if (ui_id.empty() || !ui_.pending(ui_id) || !agent_running()) {
    r = protocol::error_response(envelope.type, envelope.id, ErrorCode::not_pending,
                                 "No pending extension UI request with id '" + ui_id + "'");
  } else {
    ui_.forget(ui_id);
    agent_->write_line(protocol::dump(ui_answer_for_pi(body, ui_id)));
    r = protocol::success_response(envelope.type, envelope.id);
  }
  r.session_id = id_;
  r.session_version = version_;
  done(std::move(r));
}

bool Session::claim_restart(std::chrono::milliseconds& delay) {
  auto now = clock_.steady_now();
  while (!restart_times_.empty() && now - restart_times_.front() > agent_options_.restart_window)
    restart_times_.pop_front();
  if (restart_times_.size() >= agent_options_.max_restarts) return false;
  auto backoff = agent_options_.restart_backoff * (1u << std::min<std::size_t>(restart_times_.size(), 16));
  delay = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(backoff),
                   agent_options_.restart_backoff_max);
  restart_times_.push_back(now);
  ++restarts_total_;
  return true;
}

void Session::on_agent_stderr(std::string_view line) {
  auto now = clock_.steady_now();
  if (now - stderr_window_start_ >= std::chrono::seconds(1)) {
    if (stderr_suppressed_ > 0)
      log::warn("agent_stderr_suppressed", {{"session", id_}, {"lines", stderr_suppressed_}});
    stderr_window_start_ = now;
    stderr_in_window_ = 0;
    stderr_suppressed_ = 0;
  }
  if (stderr_in_window_ >= static_cast<std::size_t>(agent_options_.stderr_lines_per_second)) {
    ++stderr_suppressed_;
    return;
  }
  ++stderr_in_window_;
  // Agent stderr is diagnostics, not conversation text; cap its size in the log.
  constexpr std::size_t kMaxLogged = 2000;
  // Agent output may quote prompts or tool output: the text only at debug (STYLE §9).
  log::warn("agent_stderr", {{"session", id_}, {"bytes", line.size()}});
  log::debug("agent_stderr_text", {{"session", id_}, {"line", std::string(line.substr(0, kMaxLogged))}});
}

void Session::on_agent_exit(const agent::ExitStatus& status) {
  ++stats_.agent_exits;
  running_ = false;
  compacting_ = false;
  nlohmann::json fields = {{"session", id_}, {"pid", agent_->pid()}};
  if (status.exit_code) fields["exitCode"] = *status.exit_code;
  if (status.signal) fields["signal"] = *status.signal;
  if (stderr_suppressed_ > 0) fields["stderrSuppressed"] = stderr_suppressed_;
  log::info("agent_exited", fields);
  // Read before fail_pending: answering a wake-up's probe puts the session back to sleep.
  const Dormancy dormancy = dormancy_;
  fail_pending("The agent exited (" + describe(status) + ") before answering");
  // Dialogs die with the process that asked; tell subscribers to close them (on_ui_cancelled
  // writes nothing to an agent that is gone).
  ui_.cancel_all("agent_exited");
  if (dormancy == Dormancy::hibernating) {
    // Asked to go: whatever the exit status, the session now sleeps (a delete may follow).
    dormancy_ = Dormancy::hibernated;
    if (auto cb = std::exchange(hibernated_, nullptr)) cb();
    if (stopping_ && stopped_) std::exchange(stopped_, nullptr)();
    return;
  }
  if (dormancy == Dormancy::waking) {
    // Died before its first answer: fail_pending above answered the probe, whose handler
    // (the waker) has put the session back to sleep. Not a crash to restart from.
    if (stopping_ && stopped_) std::exchange(stopped_, nullptr)();
    return;
  }
  if (stopping_) {
    if (stopped_) {
      auto cb = std::move(stopped_);
      cb();
    }
    return;
  }
  observer_.on_agent_exited(*this, status);
}

void Session::fail_pending(const std::string& message) {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [agent_id, p] : pending) {
    auto r = protocol::error_response(p.client_type, p.client_id, ErrorCode::agent_exited, message);
    r.session_id = id_;
    r.session_version = version_;
    p.done(std::move(r));
  }
}

void Session::stop(std::function<void()> done) {
  stopping_ = true;
  if (!agent_running()) {
    fail_pending("The session was deleted");
    done();
    return;
  }
  stopped_ = std::move(done);
  agent_->stop(agent_options_.eof_grace, agent_options_.term_grace);
}

void Session::touch() {
  last_activity_at_ = clock_.system_now();
  last_active_ = clock_.steady_now();
}

bool Session::idle() const {
  return dormancy_ == Dormancy::awake && agent_running() && !stopping_ && quiet() &&
         ui_.ids().empty();
}

void Session::hibernate(std::function<void()> done) {
  dormancy_ = Dormancy::hibernating;
  if (!agent_running()) {
    dormancy_ = Dormancy::hibernated;
    done();
    return;
  }
  hibernated_ = std::move(done);
  agent_->stop(agent_options_.eof_grace, agent_options_.term_grace);
}

void Session::probe(Completion done) {
  protocol::Envelope probe;
  probe.type = "get_state";
  probe.spec = &protocol::spec_for(probe.type);
  probe.body = nlohmann::json{{"type", "get_state"}};
  relay(probe, std::move(done));
}

nlohmann::json Session::summary() const {
  nlohmann::json j = {
      {"sessionId", id_},
      {"cwd", launch_.cwd},
      {"model", launch_.model.empty() ? agent_options_.default_model : launch_.model},
      {"state", state_name()},
      {"createdAt", iso_time(created_at_)},
      {"lastActivityAt", iso_time(last_activity_at_)},
      {"subscriberCount", subscribers_.size()},
  };
  if (!launch_.name.empty()) j["name"] = launch_.name;
  if (agent_ && (dormancy_ == Dormancy::awake || dormancy_ == Dormancy::waking))
    j["pid"] = agent_->pid();
  return j;
}

const char* Session::state_name() const {
  if (stopping_) return "stopping";
  switch (dormancy_) {
    case Dormancy::hibernating:
    case Dormancy::hibernated: return "hibernated";
    case Dormancy::waking: return "waking";
    case Dormancy::awake: break;
  }
  return !agent_running() ? "stopped" : (running_ ? "running" : "idle");
}

}  // namespace pi_server::session
