#pragma once
// Where the pipeline makes outcomes durable (DESIGN §9 "Persistence"). The pipeline starts a
// stored command (one with an id or an idempotencyKey) only once its admission is durable,
// so a crash can never leave a run nobody knows about, and sends its response only once its
// outcome is durable, so an answered command is never run again. The durable callbacks run
// on the loop, later (group commit: persistence/journal_writer.hpp) or at once (no journal).
#include <functional>

#include "protocol/frames.hpp"
#include "reliability/outcome_store.hpp"

namespace pi_server::reliability {

class OutcomeJournal {
 public:
  using Durable = std::function<void()>;
  virtual ~OutcomeJournal() = default;
  // `record` was just admitted (not done). May set record.journal_seq.
  virtual void admitted(OutcomeRecord& record, Durable durable) = 0;
  // `record` ends with `response` (stored for replay).
  virtual void finished(const OutcomeRecord& record, const protocol::Response& response,
                        Durable durable) = 0;
  // `record` ends without a stored outcome (a rejection a retry must be able to get past).
  virtual void forgotten(const OutcomeRecord& record, Durable durable) = 0;
};

// Outcomes in memory only: everything is "durable" at once.
class NoJournal : public OutcomeJournal {
 public:
  void admitted(OutcomeRecord&, Durable durable) override { durable(); }
  void finished(const OutcomeRecord&, const protocol::Response&, Durable durable) override {
    durable();
  }
  void forgotten(const OutcomeRecord&, Durable durable) override { durable(); }
};

}  // namespace pi_server::reliability
