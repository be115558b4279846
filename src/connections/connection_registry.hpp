#pragma once
// The open client connections, by id. The core keeps connections alive only through this
// registry; a transport unregisters its connection when it closes.
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "pi_server/connection.hpp"

namespace pi_server {

class ConnectionRegistry {
 public:
  void add(std::shared_ptr<Connection> connection);
  void remove(std::uint64_t id);
  // nullptr when the connection is gone.
  Connection* find(std::uint64_t id) const;
  std::size_t size() const { return connections_.size(); }

  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [id, c] : connections_) f(*c);
  }

 private:
  std::unordered_map<std::uint64_t, std::shared_ptr<Connection>> connections_;
};

}  // namespace pi_server
