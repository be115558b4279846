#include "reliability/command_pipeline.hpp"

#include "reliability/command_log.hpp"

#include <algorithm>

#include "observability/log.hpp"

namespace pi_server::reliability {
using nlohmann::json;
using protocol::Response;

struct CommandPipeline::Job {
  Submission sub;
  std::shared_ptr<OutcomeRecord> record;  // null when the command has neither id nor key
  std::string lane;
  bool bypass = false;
  bool started = false;
  bool executing = false;
  bool finished = false;
  bool journaled = false;  // its admission is durable (or needs no journal)
  Scheduler::Handle timeout_timer = 0;
  Scheduler::Handle dependency_timer = 0;
  SteadyTime admitted{};
  // Dependencies whose completion already wakes this job.
  std::set<const OutcomeRecord*> watched;
  std::string wait_key() const { return record ? record->id_key : std::string(); }
};

namespace {

bool wants_lifecycle(const Submission& s) { return s.lifecycle_events && s.envelope.id.has_value(); }

}  // namespace

CommandPipeline::CommandPipeline(const Clock& clock, Scheduler& scheduler,
                                 PipelineCollaborators collaborators, PipelineOptions options)
    : clock_(clock),
      scheduler_(scheduler),
      store_(collaborators.outcomes),
      admission_(collaborators.admission),
      versions_(collaborators.versions),
      executor_(collaborators.executor),
      delivery_(collaborators.delivery),
      journal_(collaborators.journal),
      options_(options) {}

CommandPipeline::~CommandPipeline() = default;

bool CommandPipeline::is_retryable_rejection(const Response& response) {
  // Refusals that say "not now" (a limit, the drain) or "not like this" (a bad field): the
  // same id must be usable again, so they are answered but never stored for replay.
  if (response.success || !response.code) return false;
  switch (*response.code) {
    case ErrorCode::limit_reached:
    case ErrorCode::rate_limited:
    case ErrorCode::circuit_open:
    case ErrorCode::shutting_down:
    case ErrorCode::invalid_command:
    case ErrorCode::payload_too_large:
      return true;
    default:
      return false;
  }
}

std::string CommandPipeline::lane_of(const Submission& sub) const {
  const auto& env = sub.envelope;
  // create_session and delete_session belong to their session's lane: a create (~0.3 s for
  // pi to start) must not hold up every other server command, and commands for a session
  // queue behind its creation.
  // (Both are LaneRule::session in the command table.)
  if (env.spec->lane == protocol::LaneRule::server) return "server";
  if (!env.session_id) {
    static std::uint64_t anonymous = 0;
    return "create:" + std::to_string(++anonymous);
  }
  // Someone else's session: a lane of this principal's own, as if the session did not exist.
  // "hidden:<length of name>:<name><session id>": no sessionId a client sends can produce a
  // key of this form, whatever bytes it holds.
  if (versions_.hidden_from(*env.session_id, sub.principal))
    return "hidden:" + std::to_string(sub.principal.name.size()) + ":" + sub.principal.name +
           *env.session_id;
  return "session:" + *env.session_id;
}

std::string CommandPipeline::lane_name(const std::string& lane_key) {
  if (!lane_key.starts_with("hidden:")) return lane_key;
  std::size_t colon = lane_key.find(':', 7);
  std::size_t name_length = std::stoul(lane_key.substr(7, colon - 7));
  return "session:" + lane_key.substr(colon + 1 + name_length);
}

std::chrono::milliseconds CommandPipeline::timeout_for(const protocol::CommandSpec& spec) const {
  switch (spec.timeout) {
    case protocol::TimeoutClass::read: return options_.read_timeout;
    case protocol::TimeoutClass::normal: return options_.default_timeout;
    case protocol::TimeoutClass::long_running: return options_.long_timeout;
  }
  return options_.default_timeout;
}

void CommandPipeline::submit(Submission sub) {
  const auto& env = sub.envelope;
  // extension_ui_response is never stored: the first answer to a dialog wins, later
  // ones are told not_pending (DESIGN §9).
  bool storable = (env.id || env.idempotency_key) && env.type != "extension_ui_response";
  std::string fp = storable ? fingerprint(env) : std::string();
  if (storable) {
    auto found = store_.find(sub.principal.name, env, fp);
    if (found.match == OutcomeStore::Match::conflict) {
      ++stats_.conflicts;
      delivery_.deliver(sub.connection_id,
                        protocol::error_response(env.type, env.id, ErrorCode::conflict,
                                                 "A command with this " +
                                                     std::string(found.by_id ? "id" : "idempotencyKey") +
                                                     " was already seen with a different payload"));
      return;
    }
    if (found.match == OutcomeStore::Match::same) {
      ++stats_.replayed;
      ++found.record->replays;
      if (found.record->done) {
        answer_duplicate(sub, *found.record);
      } else if (found.record->waiting_duplicates >= kMaxDuplicateWaiters) {
        // Replays are free of rate limits; waiting ones must still be bounded.
        delivery_.deliver(sub.connection_id,
                          protocol::error_response(env.type, env.id, ErrorCode::limit_reached,
                                                   "Too many duplicates waiting for this command"));
      } else {
        ++found.record->waiting_duplicates;
        // Keep only what the answer needs, not the (possibly large) payload.
        Submission waiter;
        waiter.envelope.type = env.type;
        waiter.envelope.id = env.id;
        waiter.connection_id = sub.connection_id;
        waiter.lifecycle_events = sub.lifecycle_events;
        found.record->on_done.push_back(
            [this, waiter = std::move(waiter), alive = std::weak_ptr<int>(alive_)](const OutcomeRecord& r) {
              if (!alive.expired()) answer_duplicate(waiter, r);
            });
      }
      return;
    }
  }
  auto job = std::make_shared<Job>();
  job->lane = lane_of(sub);
  job->bypass = env.spec->lane == protocol::LaneRule::bypass;
  if (!job->bypass) {
    auto it = lanes_.find(job->lane);
    if (it != lanes_.end() && it->second.waiting.size() >= options_.max_pending_per_lane) {
      ++stats_.rejected_lane_full;
      auto r = protocol::error_response(env.type, env.id, ErrorCode::limit_reached,
                                        "Too many commands waiting in lane " + lane_name(job->lane) + " (max " +
                                            std::to_string(options_.max_pending_per_lane) + ")");
      r.session_id = env.session_id;
      delivery_.deliver(sub.connection_id, r);
      return;
    }
  }
  // Rate limits and circuit breakers last: a breaker's half-open check takes a probe slot,
  // which must only happen for a command that is then admitted.
  if (auto rejection = admission_.admit(sub)) {
    delivery_.deliver(sub.connection_id, *rejection);
    return;
  }
  if (storable) job->record = store_.begin(sub.principal.name, env, fp);
  job->sub = std::move(sub);
  job->sub.job_id = ++last_job_id_;
  job->admitted = clock_.steady_now();
  pass_gate(std::move(job));
}

void CommandPipeline::pass_gate(std::shared_ptr<Job> job) {
  if (!journal_) return admit(std::move(job));
  job->journaled = !job->record;
  if (job->journaled && gate_.empty()) return admit(std::move(job));
  gate_.push_back(job);
  if (!job->journaled) {
    journal_->admitted(*job->record, [this, job, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      job->journaled = true;
      drain_gate();
    });
  }
}

void CommandPipeline::drain_gate() {
  while (!gate_.empty() && gate_.front()->journaled) {
    auto job = std::move(gate_.front());
    gate_.pop_front();
    admit(std::move(job));
  }
}

void CommandPipeline::admit(std::shared_ptr<Job> job) {
  ++stats_.admitted;
  ++jobs_in_flight_;
  const auto& env = job->sub.envelope;
  if (wants_lifecycle(job->sub)) {
    json data = {{"commandId", *env.id}, {"command", env.type}, {"lane", lane_name(job->lane)}};
    if (env.session_id) data["sessionId"] = *env.session_id;
    delivery_.deliver_event(job->sub.connection_id, "command_accepted", data);
  }
  if (job->bypass) {
    start(job);
    return;
  }
  std::string lane = job->lane;
  lanes_[lane].waiting.push_back(std::move(job));
  pump(lane);
}

void CommandPipeline::pump(const std::string& lane_key) {
  auto it = lanes_.find(lane_key);
  if (it == lanes_.end()) return;
  Lane& lane = it->second;
  if (lane.running) return;
  if (lane.waiting.empty()) {
    lanes_.erase(it);
    return;
  }
  auto job = lane.waiting.front();
  lane.waiting.pop_front();
  lane.running = job;
  start(job);
}

void CommandPipeline::start(const std::shared_ptr<Job>& job) {
  job->started = true;
  if (job->record) job->record->started_at = clock_.system_now();
  check_preconditions(job);
}

bool CommandPipeline::waits_on(const std::string& from_key, const std::string& target_key,
                               std::set<std::string>& seen) const {
  if (from_key == target_key) return true;
  if (!seen.insert(from_key).second) return false;
  auto it = waiting_for_.find(from_key);
  if (it == waiting_for_.end()) return false;
  for (const auto& next : it->second)
    if (waits_on(next, target_key, seen)) return true;
  return false;
}

void CommandPipeline::check_preconditions(const std::shared_ptr<Job>& job) {
  if (job->finished || job->executing) return;
  const auto& env = job->sub.envelope;
  auto fail = [&](ErrorCode code, std::string message, std::optional<json> data = std::nullopt) {
    auto r = protocol::error_response(env.type, env.id, code, std::move(message));
    r.session_id = env.session_id;
    r.data = std::move(data);
    finish(job, std::move(r));
  };

  if (env.if_session_version && env.session_id) {
    auto current = versions_.session_version(*env.session_id, job->sub.principal);
    auto expected = *env.if_session_version;
    if (current && static_cast<std::int64_t>(*current) != expected) {
      ++stats_.version_mismatches;
      return fail(ErrorCode::version_mismatch,
                  "Session version is " + std::to_string(*current) + ", not " +
                      std::to_string(expected),
                  json{{"currentVersion", *current}});
    }
  }

  std::set<std::string> pending;
  {
    for (const std::string& dep : env.depends_on) {
      auto rec = store_.find_by_id(job->sub.principal.name, dep);
      if (!rec) {
        ++stats_.dependency_failures;
        return fail(ErrorCode::dependency_failed, "Unknown dependency: " + dep);
      }
      if (rec->done) {
        if (!rec->response.success) {
          ++stats_.dependency_failures;
          return fail(ErrorCode::dependency_failed, "Dependency " + dep + " failed");
        }
        continue;
      }
      // Still running. Waiting for a command queued behind us in our own lane would never
      // end; nor would waiting in a cycle.
      if (auto lane = lanes_.find(job->lane); lane != lanes_.end()) {
        for (const auto& queued : lane->second.waiting) {
          if (queued->record == rec) {
            ++stats_.dependency_failures;
            return fail(ErrorCode::dependency_failed,
                        "Dependency " + dep + " is queued after this command in lane " +
                            lane_name(job->lane));
          }
        }
      }
      std::set<std::string> seen;
      if (!job->wait_key().empty() && waits_on(rec->id_key, job->wait_key(), seen)) {
        ++stats_.dependency_failures;
        return fail(ErrorCode::dependency_failed, "dependsOn cycle through " + dep);
      }
      pending.insert(rec->id_key);
      // One wake-up per dependency, however often the preconditions are re-checked.
      if (job->watched.insert(rec.get()).second) {
        rec->on_done.push_back([this, job, alive = std::weak_ptr<int>(alive_)](const OutcomeRecord&) {
          if (!alive.expired()) check_preconditions(job);
        });
      }
    }
  }
  if (!pending.empty()) {
    if (!job->wait_key().empty()) waiting_for_[job->wait_key()] = pending;
    if (!job->dependency_timer) {
      job->dependency_timer = scheduler_.schedule(options_.dependency_wait, [this, job] {
        job->dependency_timer = 0;
        if (job->finished || job->executing) return;
        ++stats_.dependency_failures;
        auto r = protocol::error_response(job->sub.envelope.type, job->sub.envelope.id,
                                          ErrorCode::dependency_failed,
                                          "Timed out waiting for dependencies");
        r.session_id = job->sub.envelope.session_id;
        finish(job, std::move(r));
      });
    }
    return;
  }
  execute(job);
}

void CommandPipeline::execute(const std::shared_ptr<Job>& job) {
  job->executing = true;
  if (!job->wait_key().empty()) waiting_for_.erase(job->wait_key());
  if (job->dependency_timer) scheduler_.cancel(job->dependency_timer);
  job->dependency_timer = 0;
  const auto& env = job->sub.envelope;
  if (wants_lifecycle(job->sub)) {
    json data = {{"commandId", *env.id}, {"command", env.type}};
    if (env.session_id) data["sessionId"] = *env.session_id;
    delivery_.deliver_event(job->sub.connection_id, "command_started", data);
  }
  auto timeout = timeout_for(*env.spec);
  job->timeout_timer = scheduler_.schedule(timeout, [this, job, timeout] {
    job->timeout_timer = 0;
    if (job->finished) return;
    ++stats_.timeouts;
    auto r = protocol::error_response(job->sub.envelope.type, job->sub.envelope.id,
                                      ErrorCode::timeout,
                                      "No answer within " + std::to_string(timeout.count()) + " ms");
    r.timed_out = true;
    r.session_id = job->sub.envelope.session_id;
    finish(job, std::move(r));
  });
  // The reply holds the job weakly: an agent that never answers must not keep a finished
  // job (and its payload) alive.
  executor_.execute(job->sub, [this, weak_job = std::weak_ptr<Job>(job), sub = job->sub,
                               alive = std::weak_ptr<int>(alive_)](Response r) {
    if (alive.expired()) return;
    auto job = weak_job.lock();
    if (!job || job->finished) {
      // The timeout's outcome is terminal; a late answer never replaces it.
      ++stats_.late_replies;
      log_command(log::Level::warn, "late_reply_dropped", sub);
      return;
    }
    finish(job, std::move(r));
  });
}

void CommandPipeline::finish(const std::shared_ptr<Job>& job, Response response) {
  if (job->finished) return;
  job->finished = true;
  if (job->timeout_timer) scheduler_.cancel(job->timeout_timer);
  if (job->dependency_timer) scheduler_.cancel(job->dependency_timer);
  job->timeout_timer = job->dependency_timer = 0;
  if (!job->wait_key().empty()) waiting_for_.erase(job->wait_key());
  const auto& env = job->sub.envelope;
  // The response answers this request: its type, and its id only if it had one.
  response.command = env.type;
  response.id = env.id;
  response.replayed = false;
  if (journal_ && job->record) {
    // Durable first, then answered: an answered command is never run again after a crash.
    // A duplicate arriving meanwhile waits for the outcome like one of a running command.
    executor_.hold(job->sub);
    auto conclude_later = [this, job, alive = std::weak_ptr<int>(alive_), response]() mutable {
      if (!alive.expired()) conclude(job, std::move(response));
    };
    if (is_retryable_rejection(response))
      journal_->forgotten(*job->record, std::move(conclude_later));
    else
      journal_->finished(*job->record, response, std::move(conclude_later));
    return;
  }
  conclude(job, std::move(response));
}

void CommandPipeline::conclude(const std::shared_ptr<Job>& job, Response response) {
  --jobs_in_flight_;

  const auto& env = job->sub.envelope;
  // Store first, then answer (DESIGN §4): a duplicate arriving from now on gets this outcome.
  OutcomeStore::DoneCallbacks callbacks;
  if (job->record) {
    callbacks = is_retryable_rejection(response) ? store_.abandon(job->record, response)
                                                 : store_.complete(job->record, response);
  }
  delivery_.deliver(job->sub.connection_id, response);
  // Whatever waited for this response goes out right after it.
  executor_.release(job->sub);
  stats_.latency.observe(std::chrono::duration<double>(clock_.steady_now() - job->admitted).count());
  std::string outcome = response.success ? "success"
                        : response.code  ? std::string(to_string(*response.code))
                                         : "error";
  ++stats_.outcomes[{std::string(protocol::command_label(env.type)), std::move(outcome)}];
  admission_.on_finished(job->sub, response);
  if (log::enabled(log::Level::debug)) {
    json fields = {{"success", response.success}, {"durationMs", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                     clock_.steady_now() - job->admitted)
                                                                     .count()}};
    if (response.code) fields["code"] = std::string(to_string(*response.code));
    log_command(log::Level::debug, "command_finished", job->sub, std::move(fields));
  }
  if (wants_lifecycle(job->sub)) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady_now() - job->admitted);
    json data = {{"commandId", *env.id}, {"command", env.type}, {"success", response.success},
                 {"durationMs", ms.count()}};
    if (response.code) data["code"] = std::string(to_string(*response.code));
    if (env.session_id) data["sessionId"] = *env.session_id;
    delivery_.deliver_event(job->sub.connection_id, "command_finished", data);
  }
  for (auto& cb : callbacks) cb(*job->record);
  if (!job->bypass) {
    auto it = lanes_.find(job->lane);
    if (it != lanes_.end()) {
      if (it->second.running == job) {
        it->second.running = nullptr;
      } else {
        // Finished before it started (a failed precondition while queued cannot happen;
        // kept for safety): drop it from the queue.
        auto& w = it->second.waiting;
        w.erase(std::remove(w.begin(), w.end(), job), w.end());
      }
      pump(job->lane);
    }
  }
}

void CommandPipeline::answer_duplicate(const Submission& dup, const OutcomeRecord& record) {
  Response r = record.response;
  r.command = dup.envelope.type;
  r.id = dup.envelope.id;
  r.replayed = true;
  delivery_.deliver(dup.connection_id, r);
  if (wants_lifecycle(dup)) {
    json data = {{"commandId", *dup.envelope.id}, {"command", dup.envelope.type},
                 {"success", r.success}, {"replayed", true}};
    if (r.code) data["code"] = std::string(to_string(*r.code));
    delivery_.deliver_event(dup.connection_id, "command_finished", data);
  }
}

std::map<std::string, std::size_t> CommandPipeline::lane_depths() const {
  std::map<std::string, std::size_t> out;
  for (const auto& [key, lane] : lanes_) out[lane_name(key)] += lane.waiting.size() + (lane.running ? 1 : 0);
  return out;
}

}  // namespace pi_server::reliability
