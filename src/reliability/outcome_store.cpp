#include "reliability/outcome_store.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace pi_server::reliability {

namespace {

// FNV-1a over 8-byte words (then the tail bytes): not cryptographic, only to tell payloads
// of one client apart, and fast enough for a 16 MB payload (a few ms) on the loop.
std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t h) {
  constexpr std::uint64_t kPrime = 1099511628211ull;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ word) * kPrime;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<unsigned char>(bytes[i])) * kPrime;
  return h;
}

std::string digest(std::uint64_t h, std::size_t length) {
  char out[40];
  std::snprintf(out, sizeof out, "%016llx-%zx", static_cast<unsigned long long>(h), length);
  return out;
}

}  // namespace

std::string fingerprint(const nlohmann::json& body) {
  nlohmann::json payload = body;
  payload.erase("id");
  payload.erase("idempotencyKey");
  // nlohmann::json keeps object keys sorted, so dump() is canonical; the length is mixed in
  // as a second guard.
  std::string canonical = protocol::dump(payload);
  return digest(hash_bytes(canonical, 1469598103934665603ull), canonical.size());
}

std::string fingerprint(const protocol::Envelope& env) {
  if (env.raw_members.empty()) return fingerprint(env.body);
  // Big members are hashed as their minified text (whitespace-insensitive; key order inside
  // them as sent), after the canonical small part, sorted by key.
  nlohmann::json payload = env.body;
  payload.erase("id");
  payload.erase("idempotencyKey");
  std::string canonical = protocol::dump(payload);
  std::uint64_t h = hash_bytes(canonical, 1469598103934665603ull);
  std::size_t length = canonical.size();
  std::vector<const protocol::RawMember*> sorted;
  for (const auto& m : env.raw_members) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->key < b->key; });
  for (const auto* m : sorted) {
    h = hash_bytes(m->key, h ^ 0x9e3779b97f4a7c15ull);
    h = hash_bytes(m->json, h);
    length += m->key.size() + m->json.size();
  }
  return digest(h, length);
}

std::string OutcomeStore::id_key(const std::string& principal, const std::string& id) {
  return "id\x1f" + principal + "\x1f" + id;
}

std::string OutcomeStore::idem_key(const std::string& principal, bool server_command,
                                   const std::optional<std::string>& session_id,
                                   const std::string& key) {
  std::string scope = server_command ? std::string("\x1eserver") : session_id.value_or("");
  return "key\x1f" + principal + "\x1f" + scope + "\x1f" + key;
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
    auto it = index_.find(
        idem_key(principal, env.is_server_command(), env.session_id, *env.idempotency_key));
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
    r->idem_key = idem_key(principal, env.is_server_command(), env.session_id, *env.idempotency_key);
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
  in_flight_.erase(record);
  account_finished(record);
  evict();
  auto callbacks = std::move(record->on_done);
  record->on_done.clear();
  return callbacks;
}

void OutcomeStore::account_finished(const std::shared_ptr<OutcomeRecord>& record) {
  record->bytes = sizeof(OutcomeRecord) + record->fingerprint.size() + record->command.size() +
                  record->id_key.size() + record->idem_key.size() +
                  record->response.error.value_or("").size() +
                  (record->response.data ? protocol::dump(*record->response.data).size() : 0);
  bytes_ += record->bytes;
  finished_.push_back(record);
}

void OutcomeStore::restore(OutcomeRecord record) {
  auto r = std::make_shared<OutcomeRecord>(std::move(record));
  r->done = true;
  // Its age counts from when it finished, on the clock of the earlier run.
  auto age = clock_.system_now() - r->finished_at;
  r->finished_steady = clock_.steady_now() -
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::max(age, decltype(age)::zero()));
  if (r->client_id) {
    r->id_key = id_key(r->principal, *r->client_id);
    index_[r->id_key] = r;
  }
  if (r->idempotency_key) {
    r->idem_key = idem_key(r->principal, protocol::spec_for(r->command).is_server(), r->session_id,
                           *r->idempotency_key);
    index_[r->idem_key] = r;
  }
  account_finished(r);
  evict();
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
