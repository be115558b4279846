#include "server/responder.hpp"

namespace pi_server::server {

void Responder::respond(Connection& connection, const protocol::Response& response) {
  ++stats_.responses_total;
  if (response.code) count_error(*response.code);
  connection.send_control(make_frame(protocol::serialize(response)));
}

void Responder::deliver(std::uint64_t connection_id, const protocol::Response& response) {
  if (Connection* c = connections_.find(connection_id)) {
    respond(*c, response);
  } else {
    // The client left before its answer came; the answer has nowhere to go.
    ++stats_.responses_undeliverable;
  }
}

void Responder::deliver_event(std::uint64_t connection_id, std::string_view type,
                              const nlohmann::json& data) {
  if (Connection* c = connections_.find(connection_id))
    c->send_control(make_frame(protocol::server_event(type, data)));
}

void Responder::broadcast(std::string_view type, const nlohmann::json& data) {
  Frame frame = make_frame(protocol::server_event(type, data));
  connections_.for_each([&](Connection& c) { c.send_control(frame); });
}

void Responder::broadcast_to_owner(const std::string& owner, std::string_view type,
                                   const nlohmann::json& data) {
  Frame frame = make_frame(protocol::server_event(type, data));
  connections_.for_each([&](Connection& c) {
    if (c.principal().admin || c.principal().name == owner) c.send_control(frame);
  });
}

}  // namespace pi_server::server
