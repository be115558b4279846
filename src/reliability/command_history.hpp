#pragma once
// get_command_history (DESIGN §3): a query over the outcome store.
#include <nlohmann/json.hpp>
#include <string>

#include "reliability/outcome_store.hpp"

namespace pi_server::reliability {

// Finished and running commands of `principal`, oldest first, as {"commands": [...]} and,
// for protocol 1.x clients, the same list as "entries" with "returned" and "truncated".
// `filter` is the command's body: sessionIdFilter, commandId, fromTimestamp, toTimestamp
// (epoch ms) and limit (1..1000, default 100: the newest that many).
nlohmann::json command_history(const OutcomeStore& store, const std::string& principal,
                               const nlohmann::json& filter);

}  // namespace pi_server::reliability
