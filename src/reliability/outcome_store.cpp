#include "reliability/outcome_store.hpp"

#include <cstdio>

namespace pi_server::reliability {

std::string fingerprint(const nlohmann::json& body) {
  nlohmann::json payload = body;
  payload.erase("id");
  payload.erase("idempotencyKey");
  // nlohmann::json keeps object keys sorted, so dump() is canonical. FNV-1a 64 is enough to
  // tell payloads apart here; the length is mixed in as a second guard.
  std::string canonical = protocol::dump(payload);
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : canonical) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char out[40];
  std::snprintf(out, sizeof out, "%016llx-%zx", static_cast<unsigned long long>(h), canonical.size());
  return out;
}

std::string OutcomeStore::id_key(const std::string& principal, const std::string& id) {
  return "id\x1f" + principal + "\x1f" + id;
}

std::string OutcomeStore::idem_key(const std::string& principal, const protocol::Envelope& env) {
  std::string scope = env.is_server_command() ? std::string("\x1eserver")
                                                                     : env.session_id.value_or("");
  return "key\x1f" + principal + "\x1f" + scope + "\x1f" + *env.idempotency_key;
}

OutcomeStore::Found OutcomeStore::find(const std::string& principal, const protocol::Envelope& env,
                                       const std::string& fp) {
  evict();
  std::shared_ptr<OutcomeRecord> record;
  bool by_id = false;
  if (env.id) {
    auto it = index_.find(id_key(principal, *env.id));
    if (it != index_.end()) {
      record = it->second;
      by_id = true;
    }
  }
  if (!record && env.idempotency_key) {
    auto it = index_.find(idem_key(principal, env));
    if (it != index_.end()) record = it->second;
  }
  if (!record) return {};
  return {record, record->fingerprint == fp ? Match::same : Match::conflict, by_id};
}

std::shared_ptr<OutcomeRecord> OutcomeStore::find_by_id(const std::string& principal,
                                                        const std::string& id) {
  evict();
  auto it = index_.find(id_key(principal, id));
  return it == index_.end() ? nullptr : it->second;
}

std::shared_ptr<OutcomeRecord> OutcomeStore::begin(const std::string& principal,
                                                   const protocol::Envelope& env,
                                                   const std::string& fp) {
  auto r = std::make_shared<OutcomeRecord>();
  r->principal = principal;
  r->fingerprint = fp;
  r->command = env.type;
  r->session_id = env.session_id;
  r->client_id = env.id;
  r->idempotency_key = env.idempotency_key;
  r->admitted_at = clock_.system_now();
  if (env.id) {
    r->id_key = id_key(principal, *env.id);
    index_[r->id_key] = r;
  }
  if (env.idempotency_key) {
    r->idem_key = idem_key(principal, env);
    index_[r->idem_key] = r;
  }
  in_flight_.insert(r);
  return r;
}

OutcomeStore::DoneCallbacks OutcomeStore::complete(const std::shared_ptr<OutcomeRecord>& record,
                                                   protocol::Response response) {
  if (record->done) return {};
  record->done = true;
  record->response = std::move(response);
  record->finished_at = clock_.system_now();
  record->finished_steady = clock_.steady_now();
  record->bytes = sizeof(OutcomeRecord) + record->fingerprint.size() + record->command.size() +
                  record->id_key.size() + record->idem_key.size() +
                  record->response.error.value_or("").size() +
                  (record->response.data ? protocol::dump(*record->response.data).size() : 0);
  bytes_ += record->bytes;
  in_flight_.erase(record);
  finished_.push_back(record);
  evict();
  auto callbacks = std::move(record->on_done);
  record->on_done.clear();
  return callbacks;
}

OutcomeStore::DoneCallbacks OutcomeStore::abandon(const std::shared_ptr<OutcomeRecord>& record,
                                                  protocol::Response response) {
  if (record->done) return {};
  record->done = true;
  record->response = std::move(response);
  in_flight_.erase(record);
  for (const auto* key : {&record->id_key, &record->idem_key}) {
    if (key->empty()) continue;
    auto it = index_.find(*key);
    if (it != index_.end() && it->second == record) index_.erase(it);
  }
  auto callbacks = std::move(record->on_done);
  record->on_done.clear();
  return callbacks;
}

void OutcomeStore::evict() {
  auto now = clock_.steady_now();
  while (!finished_.empty() &&
         (finished_.size() > max_entries_ || bytes_ > max_bytes_ ||
          now - finished_.front()->finished_steady > max_age_)) {
    auto& r = finished_.front();
    for (const auto* key : {&r->id_key, &r->idem_key}) {
      if (key->empty()) continue;
      auto it = index_.find(*key);
      // A later command may have reused the key after a conflict-free eviction; erase only ours.
      if (it != index_.end() && it->second == r) index_.erase(it);
    }
    bytes_ -= r->bytes;
    finished_.pop_front();
    ++evictions_;
  }
}

std::vector<std::shared_ptr<OutcomeRecord>> OutcomeStore::records() const {
  std::vector<std::shared_ptr<OutcomeRecord>> out(finished_.begin(), finished_.end());
  for (const auto& r : in_flight_) out.push_back(r);
  return out;
}

}  // namespace pi_server::reliability
