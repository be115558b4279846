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

#include "pi_server/clock.hpp"
#include "protocol/envelope.hpp"
#include "protocol/frames.hpp"
#include "reliability/outcome_store.hpp"

namespace pi_server::reliability {

// Duplicates of one unfinished command that may wait for its outcome.
inline constexpr std::size_t kMaxDuplicateWaiters = 64;

struct PipelineOptions {
  // Commands waiting in one lane (not counting the one running) before limit_reached.
  std::size_t max_pending_per_lane = 64;
  // Outcome store bounds.
  std::size_t max_outcomes = 10000;
  std::chrono::seconds outcome_max_age{3600};
  // How long a command may wait for an unfinished dependsOn command.
  std::chrono::milliseconds dependency_wait{30000};
  // Timeouts by class: reads (get_*, list_sessions, ...), most commands, and long ones
  // (compact, bash, export_html, session switches, create/delete_session).
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds default_timeout{60000};
  std::chrono::milliseconds long_timeout{600000};
};

// One command handed to the pipeline.
struct Submission {
  protocol::Envelope envelope;
  std::string principal = "local";
  std::uint64_t connection_id = 0;
  bool lifecycle_events = true;
};

// Runs started commands. `reply` must be called exactly once (a later call after a timeout
// is dropped and counted).
class Executor {
 public:
  virtual ~Executor() = default;
  using Reply = std::function<void(protocol::Response)>;
  virtual void execute(const Submission& submission, Reply reply) = 0;
  // The session's current version, or nullopt if there is no such session.
  virtual std::optional<std::uint64_t> session_version(const std::string& session_id) = 0;
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
};

class CommandPipeline {
 public:
  CommandPipeline(const Clock& clock, Scheduler& scheduler, Executor& executor, Delivery& delivery,
                  PipelineOptions options);
  ~CommandPipeline();

  // Optional admission check run after replay lookup (rate limits): returns a rejection.
  using AdmissionCheck = std::function<std::optional<protocol::Response>(const Submission&)>;
  void set_admission_check(AdmissionCheck check) { admission_check_ = std::move(check); }

  // Called after every response of an admitted command (not replays or rejections), with
  // the time from admission to response.
  using FinishedHook = std::function<void(const Submission&, const protocol::Response&,
                                          std::chrono::steady_clock::duration)>;
  void set_finished_hook(FinishedHook hook) { finished_hook_ = std::move(hook); }

  void submit(Submission submission);

  // get_command_history: finished and running commands of `principal`, oldest first.
  nlohmann::json history(const std::string& principal, const nlohmann::json& filter) const;

  const PipelineStats& stats() const { return stats_; }
  const OutcomeStore& outcomes() const { return store_; }
  // Commands waiting or running per lane (for metrics).
  std::map<std::string, std::size_t> lane_depths() const;
  // Commands admitted and not yet answered.
  std::size_t in_flight() const { return jobs_in_flight_; }

  // Commands that run at once, outside their lane: they must reach pi while the lane is
  // held by a long command (abort during bash, answers to dialogs).
  static bool bypasses_lane(std::string_view type);
  static bool is_read_only(std::string_view type);
  // Rejections answered but not stored, so a retry with the same id can succeed.
  static bool is_retryable_rejection(const protocol::Response& response);

 private:
  struct Job;
  struct Lane {
    std::deque<std::shared_ptr<Job>> waiting;
    std::shared_ptr<Job> running;
  };
  static std::string lane_of(const protocol::Envelope& env);
  std::chrono::milliseconds timeout_for(std::string_view type) const;

  void admit(std::shared_ptr<Job> job);
  void pump(const std::string& lane_name);
  void start(const std::shared_ptr<Job>& job);
  void check_preconditions(const std::shared_ptr<Job>& job);
  void execute(const std::shared_ptr<Job>& job);
  void finish(const std::shared_ptr<Job>& job, protocol::Response response);
  void answer_duplicate(const Submission& dup, const OutcomeRecord& record);
  bool waits_on(const std::string& from_key, const std::string& target_key,
                std::set<std::string>& seen) const;

  const Clock& clock_;
  Scheduler& scheduler_;
  Executor& executor_;
  Delivery& delivery_;
  PipelineOptions options_;
  OutcomeStore store_;
  AdmissionCheck admission_check_;
  FinishedHook finished_hook_;
  std::unordered_map<std::string, Lane> lanes_;
  // dependsOn waits: id key of the waiting job -> id keys it waits for (cycle detection).
  std::unordered_map<std::string, std::set<std::string>> waiting_for_;
  PipelineStats stats_;
  std::size_t jobs_in_flight_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace pi_server::reliability
