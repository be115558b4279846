#pragma once
// Where responses and server events leave the core: to one connection by id, or to all.
// Counts what it sends (responses, error codes) and what had nowhere to go.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "connections/connection_registry.hpp"
#include "protocol/frames.hpp"
#include "reliability/command_pipeline.hpp"

namespace pi_server::server {

struct ResponseStats {
  std::uint64_t responses_total = 0;
  // Answers whose client had left before they came.
  std::uint64_t responses_undeliverable = 0;
  std::map<std::string, std::uint64_t> errors_by_code;
};

class Responder : public reliability::Delivery {
 public:
  explicit Responder(ConnectionRegistry& connections) : connections_(connections) {}

  void respond(Connection& connection, const protocol::Response& response);
  // reliability::Delivery
  void deliver(std::uint64_t connection_id, const protocol::Response& response) override;
  void deliver_event(std::uint64_t connection_id, std::string_view type,
                     const nlohmann::json& data) override;
  // A server event to every open connection.
  void broadcast(std::string_view type, const nlohmann::json& data);
  // A server event about something `owner` owns: to the connections of that principal and
  // of admins only (session_created, session_deleted).
  void broadcast_to_owner(const std::string& owner, std::string_view type,
                          const nlohmann::json& data);
  // Counts an error sent outside a response (a connection refused at open).
  void count_error(ErrorCode code) { ++stats_.errors_by_code[std::string(to_string(code))]; }

  const ResponseStats& stats() const { return stats_; }

 private:
  ConnectionRegistry& connections_;
  ResponseStats stats_;
};

}  // namespace pi_server::server
