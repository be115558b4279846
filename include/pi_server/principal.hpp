#pragma once
// Who a connection acts for. Everything a client can name (sessions, replay ids,
// idempotency keys, rate limits) is keyed by the principal's name; an admin sees all.
// Without authentication every connection is the one implicit principal "local".
#include <string>

namespace pi_server {

struct Principal {
  std::string name = "local";
  bool admin = false;
};

inline const Principal& local_principal() {
  static const Principal kLocal{"local", false};
  return kLocal;
}

}  // namespace pi_server
