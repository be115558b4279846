#pragma once
// Why a request was refused at the door: a closed set, so it can label a metric.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace pi_server::auth {

enum class Refusal {
  // 401: credentials missing or not accepted.
  missing_credentials,  // no Bearer header and no bearer.<token> subprotocol
  bad_token,            // not in the token file (and not a JWT we could check)
  jwt_malformed,        // not three base64url parts of JSON objects
  jwt_alg_refused,      // "none", or not the algorithm of the configured key
  jwt_bad_signature,
  jwt_expired,          // exp (plus skew) has passed
  jwt_not_yet_valid,    // nbf (minus skew) is still ahead
  jwt_issued_in_future, // iat (minus skew) is still ahead
  jwt_wrong_audience,
  jwt_wrong_issuer,
  jwt_no_subject,       // no non-empty sub: no principal
  // 403: the request is from somewhere it must not come from.
  origin_not_allowed,
  host_not_allowed,
};

std::string_view to_string(Refusal reason);
// 401 or 403.
unsigned http_status(Refusal reason);

// What the door counts (read by MetricsReport: get_metrics and /metrics).
struct AuthStats {
  std::map<std::string, std::uint64_t> refusals_by_reason;
  std::uint64_t admitted_with_credentials = 0;
  std::uint64_t reloads = 0;          // SIGHUP reloads that took effect
  std::uint64_t reload_failures = 0;  // SIGHUP reloads that kept the old credentials
};

}  // namespace pi_server::auth
