#include "reliability/command_history.hpp"

#include <algorithm>

namespace pi_server::reliability {
using nlohmann::json;

namespace {
std::int64_t epoch_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
}  // namespace

json command_history(const OutcomeStore& store, const std::string& principal, const json& filter) {
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = filter.find(key);
    if (it != filter.end() && it->is_string()) return it->get<std::string>();
    return std::nullopt;
  };
  auto num = [&](const char* key) -> std::optional<std::int64_t> {
    auto it = filter.find(key);
    if (it != filter.end() && it->is_number_integer()) return it->get<std::int64_t>();
    return std::nullopt;
  };
  auto session = str("sessionIdFilter");
  auto command_id = str("commandId");
  auto from = num("fromTimestamp");
  auto to = num("toTimestamp");
  std::int64_t limit = std::clamp<std::int64_t>(num("limit").value_or(100), 1, 1000);

  auto records = store.records();
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a->admitted_at < b->admitted_at; });
  json out = json::array();
  for (const auto& r : records) {
    if (r->principal != principal) continue;
    if (session && r->session_id != session) continue;
    if (command_id && r->client_id != command_id) continue;
    std::int64_t admitted = epoch_ms(r->admitted_at);
    if (from && admitted < *from) continue;
    if (to && admitted > *to) continue;
    json e = {{"command", r->command}, {"state", r->done ? "finished" : "running"},
              {"admittedAt", admitted}, {"replays", r->replays}};
    if (r->client_id) e["commandId"] = *r->client_id;
    if (r->idempotency_key) e["idempotencyKey"] = *r->idempotency_key;
    if (r->session_id) e["sessionId"] = *r->session_id;
    if (r->done) {
      e["success"] = r->response.success;
      if (r->response.code) e["code"] = std::string(to_string(*r->response.code));
      e["finishedAt"] = epoch_ms(r->finished_at);
      e["durationMs"] = epoch_ms(r->finished_at) - admitted;
    }
    out.push_back(std::move(e));
  }
  // The newest `limit` entries, still oldest first.
  bool truncated = static_cast<std::int64_t>(out.size()) > limit;
  if (truncated)
    out.erase(out.begin(), out.begin() + (static_cast<std::int64_t>(out.size()) - limit));
  // `entries`, `returned` and `truncated` are protocol 1.x's names (its clients read them).
  std::size_t returned = out.size();
  return json{{"commands", out}, {"entries", out}, {"returned", returned}, {"truncated", truncated}};
}

}  // namespace pi_server::reliability
