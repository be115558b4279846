#pragma once
// The outcome store (DESIGN §4): the terminal response of every command that carries an
// `id` or an `idempotencyKey`, kept so a duplicate gets the same answer (replayed:true)
// without running again. A duplicate `id` is matched per principal; an idempotencyKey per
// (principal, session-or-"server"). Same identity with another payload fingerprint is a
// conflict. Bounded by count and age; only finished outcomes are evicted, oldest first.
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pi_server/clock.hpp"
#include "protocol/envelope.hpp"
#include "protocol/frames.hpp"

namespace pi_server::reliability {

struct OutcomeRecord {
  std::string principal;
  std::string fingerprint;
  std::string command;
  std::optional<std::string> session_id;
  std::optional<std::string> client_id;
  std::optional<std::string> idempotency_key;
  std::string id_key;    // index keys (empty when absent)
  std::string idem_key;
  bool done = false;
  protocol::Response response;  // the terminal response, when done
  SystemTime admitted_at{};
  SystemTime started_at{};
  SystemTime finished_at{};
  SteadyTime finished_steady{};
  std::uint64_t replays = 0;
  std::size_t waiting_duplicates = 0;
  // Its key in the outcome journal (0: not journaled).
  std::uint64_t journal_seq = 0;
  // What the finished record holds in memory, about (its response and keys): the store's
  // byte bound counts this.
  std::size_t bytes = 0;
  // Called once when the outcome becomes terminal (duplicates in flight, dependents).
  std::vector<std::function<void(const OutcomeRecord&)>> on_done;
};

// Digest of the canonical payload without `id` and `idempotencyKey` (keys sorted, compact).
std::string fingerprint(const nlohmann::json& body);
// The same for a parsed command, its raw members included (see Envelope::raw_members).
std::string fingerprint(const protocol::Envelope& env);

class OutcomeStore {
 public:
  // Finished outcomes are kept while there are at most `max_entries` of them, together
  // holding at most `max_bytes`, none older than `max_age`; the oldest leave first.
  OutcomeStore(const Clock& clock, std::size_t max_entries, std::chrono::seconds max_age,
               std::size_t max_bytes = std::numeric_limits<std::size_t>::max())
      : clock_(clock), max_entries_(max_entries), max_age_(max_age), max_bytes_(max_bytes) {}

  enum class Match { none, same, conflict };
  struct Found {
    std::shared_ptr<OutcomeRecord> record;
    Match match = Match::none;
    bool by_id = false;  // matched on `id` (else on `idempotencyKey`)
  };
  // Looks the identity up: by id first, then by idempotency key.
  Found find(const std::string& principal, const protocol::Envelope& env, const std::string& fp);
  // The record of a command id of this principal (for dependsOn), or null.
  std::shared_ptr<OutcomeRecord> find_by_id(const std::string& principal, const std::string& id);

  // Registers an in-flight command. REQUIRES: find() returned none for it, and it has an id
  // or an idempotency key.
  std::shared_ptr<OutcomeRecord> begin(const std::string& principal, const protocol::Envelope& env,
                                       const std::string& fp);
  using DoneCallbacks = std::vector<std::function<void(const OutcomeRecord&)>>;
  // Makes the outcome terminal. Returns its on_done callbacks for the caller to run once it
  // has sent the original response (so the first answer goes out first).
  [[nodiscard]] DoneCallbacks complete(const std::shared_ptr<OutcomeRecord>& record,
                                       protocol::Response response);

  // Forgets an in-flight command without storing an outcome (a rejection a retry must be
  // able to get past). Returns its on_done callbacks, like complete().
  [[nodiscard]] DoneCallbacks abandon(const std::shared_ptr<OutcomeRecord>& record,
                                      protocol::Response response);

  // Adds a finished outcome from the journal of an earlier run (at start, oldest first):
  // its keys are derived from its principal, command, session and ids; its age from
  // finished_at. REQUIRES: record.done.
  void restore(OutcomeRecord record);

  std::size_t size() const { return finished_.size() + in_flight_.size(); }
  // Bytes held by finished outcomes (see OutcomeRecord::bytes).
  std::size_t bytes() const { return bytes_; }
  std::uint64_t evictions() const { return evictions_; }
  // Finished records oldest first, then the ones in flight (for get_command_history).
  std::vector<std::shared_ptr<OutcomeRecord>> records() const;

 private:
  static std::string id_key(const std::string& principal, const std::string& id);
  static std::string idem_key(const std::string& principal, bool server_command,
                              const std::optional<std::string>& session_id,
                              const std::string& key);
  void account_finished(const std::shared_ptr<OutcomeRecord>& record);
  void evict();

  const Clock& clock_;
  std::size_t max_entries_;
  std::chrono::seconds max_age_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::unordered_map<std::string, std::shared_ptr<OutcomeRecord>> index_;
  std::deque<std::shared_ptr<OutcomeRecord>> finished_;  // completion order
  std::unordered_set<std::shared_ptr<OutcomeRecord>> in_flight_;
  std::uint64_t evictions_ = 0;
};

}  // namespace pi_server::reliability
