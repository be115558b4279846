#pragma once
// The one path every admitted command takes (DESIGN §4, after parsing, validation and the
// shutdown check, which the Server does):
//   replay lookup -> (rate limit hook) -> admit (command_accepted) -> lane (in admission
//   order) -> preconditions (dependsOn, ifSessionVersion) -> command_started -> execute with
//   a timeout by class -> store the terminal outcome -> response -> command_finished.
// Pure logic on a Clock and a Scheduler: unit tests run it without an event loop.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "observability/metrics.hpp"
#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "pi_server/principal.hpp"
#include "protocol/envelope.hpp"
#include "protocol/frames.hpp"
#include "reliability/outcome_journal.hpp"
#include "reliability/outcome_store.hpp"

namespace pi_server::reliability {

// Duplicates of one unfinished command that may wait for its outcome.
inline constexpr std::size_t kMaxDuplicateWaiters = 64;

// One command handed to the pipeline.
struct Submission {
  protocol::Envelope envelope;
  // Who sent it (the connection's principal): replay ids and idempotency keys are looked up
  // by its name, and a session it may not see is, for this command, a session that does
  // not exist (session_not_found, the same path and answer as for an unknown id).
  Principal principal;
  std::uint64_t connection_id = 0;
  bool lifecycle_events = true;
  // Set by the pipeline when it admits the command: the job's identity, unique for the
  // daemon's lifetime and kept by copies (an executor that waits, e.g. for a session to
  // wake, holds a copy; hold() and release() still name the same job).
  std::uint64_t job_id = 0;
};

// Decides whether a command may be admitted now (rate limits, circuit breakers), and learns
// how each admitted command ended (breaker accounting). The authorize step lives here too.
class AdmissionControl {
 public:
  virtual ~AdmissionControl() = default;
  // A rejection to answer instead of admitting, or nullopt to admit. Called after the
  // replay lookup (replays are free) and the lane check.
  virtual std::optional<protocol::Response> admit(const Submission& submission) = 0;
  // After the response of every admitted command (not replays or rejections).
  virtual void on_finished(const Submission& submission, const protocol::Response& response) = 0;
};

// What the pipeline asks about sessions: their version (ifSessionVersion preconditions) and
// whether one exists that the asker may not see.
class SessionVersions {
 public:
  virtual ~SessionVersions() = default;
  // The session's current version, or nullopt if there is no such session that `asker` may
  // see.
  virtual std::optional<std::uint64_t> session_version(const std::string& session_id,
                                                       const Principal& asker) const = 0;
  // True if the session exists and belongs to someone `asker` may not see. Its commands then
  // queue in a lane of their own (not behind the owner's), so nothing about them -- wait,
  // lane limit -- differs from a command for a session that does not exist.
  virtual bool hidden_from(const std::string& session_id, const Principal& asker) const {
    return false;
  }
};

// Runs started commands. `reply` must be called exactly once (a later call after a timeout
// is dropped and counted).
class Executor {
 public:
  virtual ~Executor() = default;
  using Reply = std::function<void(protocol::Response)>;
  virtual void execute(const Submission& submission, Reply reply) = 0;
  // The answer to `submission` waits for the journal: hold what would overtake it (its
  // session's events) until release().
  virtual void hold(const Submission& submission) {}
  // Called once for every started or answered job, right after its response was delivered
  // (whether or not hold() was called): what must follow the response goes now.
  virtual void release(const Submission& submission) {}
};

// Sends frames to connections (responses and lifecycle events).
class Delivery {
 public:
  virtual ~Delivery() = default;
  virtual void deliver(std::uint64_t connection_id, const protocol::Response& response) = 0;
  virtual void deliver_event(std::uint64_t connection_id, std::string_view type,
                             const nlohmann::json& data) = 0;
};

struct PipelineStats {
  std::uint64_t admitted = 0;
  std::uint64_t replayed = 0;
  std::uint64_t conflicts = 0;
  std::uint64_t rejected_lane_full = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t late_replies = 0;
  std::uint64_t dependency_failures = 0;
  std::uint64_t version_mismatches = 0;
  // Time from admission to response of admitted commands.
  observability::Histogram latency;
  // Responses of admitted commands by (command label, "success" or the error code).
  std::map<std::pair<std::string, std::string>, std::uint64_t> outcomes;
};

// What the pipeline works with, each behind an interface.
struct PipelineCollaborators {
  OutcomeStore& outcomes;
  AdmissionControl& admission;
  SessionVersions& versions;
  Executor& executor;
  Delivery& delivery;
  // Null: outcomes live in memory only.
  OutcomeJournal* journal = nullptr;
};

class CommandPipeline {
 public:
  CommandPipeline(const Clock& clock, Scheduler& scheduler, PipelineCollaborators collaborators,
                  PipelineOptions options);
  ~CommandPipeline();

  void submit(Submission submission);

  const PipelineStats& stats() const { return stats_; }
  // Commands waiting or running per lane (for metrics).
  std::map<std::string, std::size_t> lane_depths() const;
  // Commands admitted and not yet answered (those waiting for the journal included).
  std::size_t in_flight() const { return jobs_in_flight_ + gate_.size(); }

  // Rejections answered but not stored, so a retry with the same id can succeed.
  static bool is_retryable_rejection(const protocol::Response& response);

 private:
  struct Job;
  struct Lane {
    std::deque<std::shared_ptr<Job>> waiting;
    std::shared_ptr<Job> running;
  };
  // The lane a command queues in (its key; lane_name() is what clients see: "server",
  // "create:<n>" or "session:<id>", also for the lane of someone else's session).
  std::string lane_of(const Submission& sub) const;
  static std::string lane_name(const std::string& lane_key);
  std::chrono::milliseconds timeout_for(const protocol::CommandSpec& spec) const;

  // Admission waits for the journal: jobs leave this gate in submission order, each once
  // its own admission (if journaled) is durable.
  void pass_gate(std::shared_ptr<Job> job);
  void drain_gate();
  void admit(std::shared_ptr<Job> job);
  void pump(const std::string& lane_key);
  void start(const std::shared_ptr<Job>& job);
  void check_preconditions(const std::shared_ptr<Job>& job);
  void execute(const std::shared_ptr<Job>& job);
  void finish(const std::shared_ptr<Job>& job, protocol::Response response);
  // After the outcome is durable: store it, answer, free the lane.
  void conclude(const std::shared_ptr<Job>& job, protocol::Response response);
  void answer_duplicate(const Submission& dup, const OutcomeRecord& record);
  bool waits_on(const std::string& from_key, const std::string& target_key,
                std::set<std::string>& seen) const;

  const Clock& clock_;
  Scheduler& scheduler_;
  OutcomeStore& store_;
  AdmissionControl& admission_;
  SessionVersions& versions_;
  Executor& executor_;
  Delivery& delivery_;
  OutcomeJournal* journal_;
  PipelineOptions options_;
  std::deque<std::shared_ptr<Job>> gate_;
  std::unordered_map<std::string, Lane> lanes_;
  // dependsOn waits: id key of the waiting job -> id keys it waits for (cycle detection).
  std::unordered_map<std::string, std::set<std::string>> waiting_for_;
  PipelineStats stats_;
  std::uint64_t last_job_id_ = 0;
  std::size_t jobs_in_flight_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace pi_server::reliability
