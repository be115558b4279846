#pragma once
// The door of the TCP listener (the Authenticator the transport asks): decides every
// HTTP request before it is served, in this order:
//   /healthz, /readyz      always served (probes need no credentials);
//   Host                   not a loopback name, the bound address or --allow-host: 403
//                          (DNS rebinding);
//   Origin (upgrades)      present and not allowed: 403 (a web page must not drive the daemon);
//   credentials            with authentication on, a WebSocket upgrade (and /metrics with
//                          --metrics-auth) needs a bearer token: 401 without a good one.
//                          A token in the token file wins; otherwise, with a JWT key, a
//                          token of JWT shape is verified as one.
// The bearer token comes from "Authorization: Bearer T" or, for browsers that cannot set
// headers, the subprotocol "bearer.T" offered next to "pi-server.v1". Tokens are never
// logged; refusals are counted by reason (AuthStats) and logged per address, rate-limited.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/host_check.hpp"
#include "auth/jwt_verifier.hpp"
#include "auth/refusal.hpp"
#include "auth/refusal_log.hpp"
#include "auth/token_table.hpp"
#include "pi_server/authenticator.hpp"
#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "pi_server/result.hpp"

namespace pi_server::auth {

// The bearer token a request carries (Authorization first, then the subprotocol), or
// nullopt. A view into the request.
std::optional<std::string_view> bearer_token(std::string_view authorization,
                                             std::string_view websocket_protocols);

class RequestGate : public Authenticator {
 public:
  // Loads the credential files named in `options`. Fails with the reason (the daemon
  // then exits 2). `stats` must outlive the gate.
  // `bound_host` is the --listen address (for the Host check).
  static Result<std::unique_ptr<RequestGate>> create(const AuthOptions& options,
                                                     const std::string& bound_host,
                                                     const Clock& clock, AuthStats& stats);

  Admission admit(const RequestFacts& request) override;

  // SIGHUP: re-reads the credential files. A file that fails to load keeps the previous
  // credentials, and the reason is logged (credential_reload_failed).
  void reload();

 private:
  RequestGate(const AuthOptions& options, const std::string& bound_host, const Clock& clock,
              AuthStats& stats);
  Status load_credentials();
  Admission refuse(Refusal reason, const RequestFacts& request);
  // The principal for a bearer token, or why not.
  Result<Principal, Refusal> authenticate(std::string_view token);
  bool origin_allowed(std::string_view origin) const;

  AuthOptions options_;
  const Clock& clock_;
  AuthStats& stats_;
  RefusalLog refusal_log_;
  HostCheck host_check_;
  std::optional<TokenTable> tokens_;
  std::optional<JwtVerifier> jwt_;
};

}  // namespace pi_server::auth
