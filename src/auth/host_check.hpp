#pragma once
// The Host header check against DNS rebinding: a web page on evil.example whose name is
// made to resolve to 127.0.0.1 talks to the daemon with "Host: evil.example". Only names
// that cannot be rebound by someone else are served: loopback names, the address the
// listener is bound to (any IP literal when it is bound to all addresses), and names the
// operator allowed (--allow-host).
#include <string>
#include <string_view>
#include <vector>

namespace pi_server::auth {

class HostCheck {
 public:
  // `bound_host`: the --listen address (IP literal). `allowed`: extra names, any case.
  HostCheck(std::string bound_host, std::vector<std::string> allowed);

  // True if a request with this Host header value (port included or not) may be served.
  // An empty value (no Host header) is refused.
  bool allows(std::string_view host_header) const;

 private:
  std::string bound_;  // normalized; empty when bound to every address
  bool bound_to_all_ = false;
  std::vector<std::string> allowed_;  // lower case, no trailing dot
};

}  // namespace pi_server::auth
