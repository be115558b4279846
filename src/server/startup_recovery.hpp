#pragma once
// What this start brought back from the earlier run, and what it lost (get_startup_recovery,
// DESIGN §11): sessions resumed (--resume-sessions) or not, and the commands that were in
// flight at the crash (their outcome is unknown; a retry is answered outcome_unknown).
#include <nlohmann/json.hpp>
#include <string>

namespace pi_server::server {

struct StartupRecovery {
  // [{sessionId, owner}] / [{sessionId, owner, error}]
  nlohmann::json recovered_sessions = nlohmann::json::array();
  nlohmann::json failed_sessions = nlohmann::json::array();
  // [{principal, commandId?, idempotencyKey?, command, sessionId?, admittedAt}]
  nlohmann::json in_flight_at_crash = nlohmann::json::array();
  std::size_t outcomes_restored = 0;
  std::size_t sessions_resuming = 0;  // --resume-sessions starts not finished yet

  // The part `principal` may see: {recoveredSessions, failedSessions, inFlightAtCrash,
  // outcomesRestored, resumePending}, without the owner/principal fields.
  nlohmann::json for_principal(const std::string& principal) const {
    auto mine = [&](const nlohmann::json& list, const char* key) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : list) {
        if (item.value(key, "") != principal) continue;
        nlohmann::json copy = item;
        copy.erase(key);
        out.push_back(std::move(copy));
      }
      return out;
    };
    return {{"recoveredSessions", mine(recovered_sessions, "owner")},
            {"failedSessions", mine(failed_sessions, "owner")},
            {"inFlightAtCrash", mine(in_flight_at_crash, "principal")},
            {"outcomesRestored", outcomes_restored},
            {"resumePending", sessions_resuming}};
  }
};

}  // namespace pi_server::server
