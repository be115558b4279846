#include "persistence/outcome_journal.hpp"

#include "observability/log.hpp"

namespace pi_server::persistence {
using nlohmann::json;
using protocol::Response;

namespace {

std::int64_t epoch_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

SystemTime from_epoch_ms(std::int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

}  // namespace

std::string encode_response(const Response& r) {
  json j = {{"success", r.success}};
  if (r.data) j["data"] = *r.data;
  if (r.error) j["error"] = *r.error;
  if (r.code) j["code"] = std::string(to_string(*r.code));
  if (r.session_id) j["sessionId"] = *r.session_id;
  if (r.session_version) j["sessionVersion"] = *r.session_version;
  if (r.timed_out) j["timedOut"] = true;
  return protocol::dump(j);
}

std::optional<Response> decode_response(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("success") || !j["success"].is_boolean()) return std::nullopt;
  Response r;
  r.success = j["success"].get<bool>();
  if (auto it = j.find("data"); it != j.end()) r.data = *it;
  if (auto it = j.find("error"); it != j.end() && it->is_string()) r.error = it->get<std::string>();
  if (auto it = j.find("code"); it != j.end() && it->is_string())
    r.code = error_code_from_string(it->get<std::string>());
  if (auto it = j.find("sessionId"); it != j.end() && it->is_string())
    r.session_id = it->get<std::string>();
  if (auto it = j.find("sessionVersion"); it != j.end() && it->is_number_unsigned())
    r.session_version = it->get<std::uint64_t>();
  r.timed_out = j.value("timedOut", false);
  return r;
}

void StoredOutcomeJournal::admitted(reliability::OutcomeRecord& record, Durable durable) {
  record.journal_seq = next_seq_++;
  JournalEntry e;
  e.seq = record.journal_seq;
  e.principal = record.principal;
  e.command_id = record.client_id;
  e.idempotency_key = record.idempotency_key;
  e.command = record.command;
  e.session_id = record.session_id;
  e.fingerprint = record.fingerprint;
  e.admitted_at_ms = epoch_ms(record.admitted_at);
  store_.journal_admitted(std::move(e), std::move(durable));
}

void StoredOutcomeJournal::finished(const reliability::OutcomeRecord& record,
                                    const Response& response, Durable durable) {
  store_.journal_finished(record.journal_seq, epoch_ms(clock_.system_now()),
                          encode_response(response), std::move(durable));
}

void StoredOutcomeJournal::forgotten(const reliability::OutcomeRecord& record, Durable durable) {
  store_.journal_forget(record.journal_seq, std::move(durable));
}

JournalRecovery recover_journal(Store& store, reliability::OutcomeStore& outcomes) {
  JournalRecovery out;
  auto entries = store.load_journal();
  for (auto& e : entries) {
    out.next_seq = std::max(out.next_seq, e.seq + 1);
    reliability::OutcomeRecord r;
    r.principal = e.principal;
    r.fingerprint = e.fingerprint;
    r.command = e.command;
    r.session_id = e.session_id;
    r.client_id = e.command_id;
    r.idempotency_key = e.idempotency_key;
    r.journal_seq = e.seq;
    r.admitted_at = r.started_at = from_epoch_ms(e.admitted_at_ms);
    std::optional<Response> response;
    if (e.response) response = decode_response(*e.response);
    if (e.response && !response)
      log::warn("journal_entry_unreadable", {{"seq", e.seq}, {"command", e.command}});
    if (!response) {
      // Admitted, never answered (or unreadable): it may or may not have run. A retry is
      // told so and not run again; the entry keeps this answer from now on.
      Response unknown = protocol::error_response(
          e.command, e.command_id, ErrorCode::outcome_unknown,
          "The daemon stopped (crash or kill) while this command was in flight: it may or may "
          "not have taken effect, and it is not run again. Check the session (get_state, "
          "get_messages) and send it again with a new id if it is still wanted");
      unknown.session_id = e.session_id;
      unknown.data = json{{"admittedAt", e.admitted_at_ms}};
      response = unknown;
      json lost = {{"principal", e.principal}, {"command", e.command}, {"admittedAt", e.admitted_at_ms}};
      if (e.command_id) lost["commandId"] = *e.command_id;
      if (e.idempotency_key) lost["idempotencyKey"] = *e.idempotency_key;
      if (e.session_id) lost["sessionId"] = *e.session_id;
      out.in_flight_at_crash.push_back(std::move(lost));
      e.finished_at_ms = e.admitted_at_ms;
      store.journal_finished(e.seq, *e.finished_at_ms, encode_response(*response));
    }
    r.response = std::move(*response);
    r.response.command = e.command;
    r.response.id = e.command_id;
    r.finished_at = from_epoch_ms(e.finished_at_ms.value_or(e.admitted_at_ms));
    outcomes.restore(std::move(r));
    ++out.restored;
  }
  return out;
}

}  // namespace pi_server::persistence
