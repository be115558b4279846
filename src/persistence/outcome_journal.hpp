#pragma once
// The pipeline's outcome journal on a Store, and the way back at start: the journal of the
// earlier run refills the OutcomeStore (duplicates replay the identical response), and a
// command admitted without a recorded outcome becomes an `outcome_unknown` outcome (a retry
// is told so, never run again) and is reported by get_startup_recovery.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "persistence/store.hpp"
#include "pi_server/clock.hpp"
#include "reliability/outcome_journal.hpp"
#include "reliability/outcome_store.hpp"

namespace pi_server::persistence {

class StoredOutcomeJournal : public reliability::OutcomeJournal {
 public:
  // `next_seq`: the first journal key this run uses (recover_journal tells it).
  StoredOutcomeJournal(Store& store, const Clock& clock, std::uint64_t next_seq)
      : store_(store), clock_(clock), next_seq_(next_seq) {}

  void admitted(reliability::OutcomeRecord& record, Durable durable) override;
  void finished(const reliability::OutcomeRecord& record, const protocol::Response& response,
                Durable durable) override;
  void forgotten(const reliability::OutcomeRecord& record, Durable durable) override;

 private:
  Store& store_;
  const Clock& clock_;
  std::uint64_t next_seq_;
};

struct JournalRecovery {
  std::size_t restored = 0;  // finished outcomes back in the OutcomeStore
  // Commands admitted before the crash whose outcome is unknown:
  // [{principal, commandId?, idempotencyKey?, command, sessionId?, admittedAt}]
  nlohmann::json in_flight_at_crash = nlohmann::json::array();
  std::uint64_t next_seq = 1;
};

// Reads the journal into `outcomes` (at start, before the loop runs) and records an
// outcome_unknown outcome for every entry that had none.
JournalRecovery recover_journal(Store& store, reliability::OutcomeStore& outcomes);

// The terminal response as the journal keeps it (everything but the command and id, which
// the entry holds), and back.
std::string encode_response(const protocol::Response& response);
std::optional<protocol::Response> decode_response(const std::string& text);

}  // namespace pi_server::persistence
