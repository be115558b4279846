#pragma once
// What admission (circuit breakers) needs to know from the sessions, without knowing the
// sessions: which provider a session talks to, and what its agent reports about it.
#include <chrono>
#include <string>

#include "pi_server/principal.hpp"
#include "session/session.hpp"

namespace pi_server::session {

using ProviderResult = SessionObserver::ProviderResult;

class ProviderLookup {
 public:
  virtual ~ProviderLookup() = default;
  // The LLM provider of the session, or "" (no such session that `asker` may see, or no
  // provider known yet).
  virtual std::string provider_of(const std::string& session_id, const Principal& asker) const = 0;
};

class ProviderFeedback {
 public:
  virtual ~ProviderFeedback() = default;
  // One per assistant message_end (stopReason error = failure, aborted = neither).
  virtual void on_provider_result(const std::string& provider, ProviderResult result) = 0;
  // Each run's length (agent_start to agent_settled).
  virtual void on_run_finished(const std::string& provider,
                               std::chrono::steady_clock::duration length) = 0;
};

}  // namespace pi_server::session
