#pragma once
// Small helpers shared by the integration and end-to-end tests.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ws_client.hpp"

namespace pi_server::testing {

inline bool is_response(const nlohmann::json& j, const std::string& id) {
  return j.value("type", "") == "response" && j.contains("id") && j["id"] == id;
}

inline bool is_event(const nlohmann::json& j, const std::string& session, const std::string& type) {
  return j.value("type", "") == "event" && j.value("sessionId", "") == session &&
         j["event"].value("type", "") == type;
}

// Reads the server_ready frame and creates a session; fails the test if either is missing.
inline nlohmann::json open_session(WsClient& c, const std::string& session_id,
                                   nlohmann::json extra = nlohmann::json::object()) {
  auto ready = c.next();
  EXPECT_TRUE(ready && (*ready)["type"] == "server_ready");
  nlohmann::json cmd = {{"type", "create_session"}, {"id", "create-" + session_id},
                        {"sessionId", session_id}};
  cmd.update(extra);
  auto r = c.request(cmd, std::chrono::seconds(30));
  EXPECT_EQ(r["success"], true) << r.dump();
  return r;
}

// Events of one session from the client's history, in arrival order.
inline std::vector<nlohmann::json> session_events(const WsClient& c, const std::string& session) {
  std::vector<nlohmann::json> out;
  for (const auto& j : c.history())
    if (j.value("type", "") == "event" && j.value("sessionId", "") == session) out.push_back(j);
  return out;
}

// Sends a prompt and reads until agent_settled; returns that run's events.
inline std::vector<nlohmann::json> run_prompt(WsClient& c, const std::string& session,
                                              const std::string& message, const std::string& id,
                                              std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  std::size_t before = c.history().size();
  auto r = c.request({{"type", "prompt"}, {"id", id}, {"sessionId", session}, {"message", message}},
                     timeout);
  EXPECT_EQ(r["success"], true) << r.dump();
  auto settled = c.wait_for([&](const nlohmann::json& j) { return is_event(j, session, "agent_settled"); },
                            timeout);
  EXPECT_TRUE(settled.has_value()) << "no agent_settled for " << message;
  std::vector<nlohmann::json> out;
  for (std::size_t i = before; i < c.history().size(); ++i)
    if (c.history()[i].value("type", "") == "event" && c.history()[i].value("sessionId", "") == session)
      out.push_back(c.history()[i]);
  return out;
}

// The final assistant text of a run (from its last assistant message_end).
inline std::string final_text(const std::vector<nlohmann::json>& events) {
  std::string text;
  for (const auto& e : events) {
    const auto& ev = e["event"];
    if (ev.value("type", "") == "message_end" && ev["message"].value("role", "") == "assistant") {
      text.clear();
      for (const auto& part : ev["message"]["content"])
        if (part.value("type", "") == "text") text += part.value("text", "");
    }
  }
  return text;
}

// Seqs must run 1, 2, 3... with no gap and no duplicate across the session's events.
inline void expect_contiguous_seq(const std::vector<nlohmann::json>& events, std::uint64_t first = 1) {
  std::uint64_t want = first;
  for (const auto& e : events) {
    ASSERT_EQ(e["seq"].get<std::uint64_t>(), want) << e.dump().substr(0, 200);
    ++want;
  }
}

}  // namespace pi_server::testing
