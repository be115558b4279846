#include "auth/refusal.hpp"

namespace pi_server::auth {

std::string_view to_string(Refusal reason) {
  switch (reason) {
    case Refusal::missing_credentials: return "missing_credentials";
    case Refusal::bad_token: return "bad_token";
    case Refusal::jwt_malformed: return "jwt_malformed";
    case Refusal::jwt_alg_refused: return "jwt_alg_refused";
    case Refusal::jwt_bad_signature: return "jwt_bad_signature";
    case Refusal::jwt_expired: return "jwt_expired";
    case Refusal::jwt_not_yet_valid: return "jwt_not_yet_valid";
    case Refusal::jwt_issued_in_future: return "jwt_issued_in_future";
    case Refusal::jwt_wrong_audience: return "jwt_wrong_audience";
    case Refusal::jwt_wrong_issuer: return "jwt_wrong_issuer";
    case Refusal::jwt_no_subject: return "jwt_no_subject";
    case Refusal::origin_not_allowed: return "origin_not_allowed";
    case Refusal::host_not_allowed: return "host_not_allowed";
  }
  return "other";
}

unsigned http_status(Refusal reason) {
  return reason == Refusal::origin_not_allowed || reason == Refusal::host_not_allowed ? 403 : 401;
}

}  // namespace pi_server::auth
