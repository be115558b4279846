#pragma once
// The seam between the listener and the credential logic (src/auth/): the transport
// copies what it read from an HTTP request into RequestFacts and asks an Authenticator
// whether to serve it and for whom. Beast types stay in src/transport/.
#include <string>
#include <string_view>

#include "pi_server/principal.hpp"

namespace pi_server {

// What an HTTP request (a WebSocket upgrade or a plain GET) says about itself. Views into
// the request; valid only during Authenticator::admit.
struct RequestFacts {
  bool websocket_upgrade = false;
  std::string_view target;               // "/metrics?x" (path and query)
  std::string_view host;                 // Host header; empty if absent
  bool has_origin = false;               // an Origin header was sent (even empty)
  std::string_view origin;
  std::string_view authorization;        // Authorization header; empty if absent
  std::string_view websocket_protocols;  // Sec-WebSocket-Protocol; empty if absent
  std::string_view remote_address;       // peer IP, for logs only
};

// The answer: serve (status 0) acting for `principal`, or refuse with an HTTP status
// (401 missing/bad credentials, 403 Origin or Host not allowed) and this JSON body.
struct Admission {
  unsigned status = 0;
  std::string body;
  Principal principal;  // meaningful when status == 0

  bool admitted() const { return status == 0; }
};

// Decides every request on the listener before it is served. Counts and logs refusals
// itself (never the credentials). Runs on the loop thread; must not block.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual Admission admit(const RequestFacts& request) = 0;
};

}  // namespace pi_server
