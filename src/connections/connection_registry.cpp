#include "connections/connection_registry.hpp"

namespace pi_server {

void ConnectionRegistry::add(std::shared_ptr<Connection> connection) {
  auto id = connection->id();
  connections_.emplace(id, std::move(connection));
}

void ConnectionRegistry::remove(std::uint64_t id) { connections_.erase(id); }

Connection* ConnectionRegistry::find(std::uint64_t id) const {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

}  // namespace pi_server

namespace pi_server {
std::uint64_t next_connection_id() {
  static std::uint64_t next = 1;
  return next++;
}
}  // namespace pi_server
