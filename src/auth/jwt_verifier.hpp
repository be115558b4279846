#pragma once
// JSON Web Tokens (RFC 7519) signed with HS256 (shared secret), RS256 or ES256 (public
// key), verified with OpenSSL. The algorithm is fixed by the configured key, never taken
// from the token: "alg":"none" and any other algorithm are refused before the signature
// is looked at (the classic alg-confusion attacks). Claims: exp, nbf and iat are checked
// with a clock-skew allowance when present; aud and iss when configured; sub is the
// principal and must be a non-empty string; "admin": true makes an admin.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "auth/refusal.hpp"
#include "pi_server/clock.hpp"
#include "pi_server/options.hpp"
#include "pi_server/principal.hpp"
#include "pi_server/result.hpp"

namespace pi_server::auth {

struct JwtClaimRules {
  std::string audience;  // empty: aud not checked
  std::string issuer;    // empty: iss not checked
  std::chrono::seconds clock_skew{60};
};

class JwtVerifier {
 public:
  enum class Algorithm { hs256, rs256, es256 };

  // HS256 with this secret (at least 32 bytes, RFC 7518 §3.2).
  static Result<JwtVerifier> with_secret(std::string secret, JwtClaimRules rules);
  // RS256 (an RSA key of at least 2048 bits) or ES256 (an EC P-256 key), by the key's type.
  static Result<JwtVerifier> with_public_key_pem(std::string_view pem, JwtClaimRules rules);
  // From --jwt-hs256-secret-file or --jwt-public-key (exactly one must be set). The secret
  // file's trailing newline characters are not part of the secret.
  static Result<JwtVerifier> load(const AuthOptions& options);

  // The token's principal, or why not.
  Result<Principal, Refusal> verify(std::string_view token, SystemTime now) const;
  Algorithm algorithm() const { return algorithm_; }

 private:
  JwtVerifier(Algorithm algorithm, JwtClaimRules rules)
      : algorithm_(algorithm), rules_(std::move(rules)) {}
  bool signature_ok(std::string_view signed_part, std::string_view signature) const;

  Algorithm algorithm_;
  JwtClaimRules rules_;
  std::string secret_;        // hs256
  std::shared_ptr<void> key_;  // EVP_PKEY (rs256, es256); void keeps OpenSSL out of the header
};

std::string_view to_string(JwtVerifier::Algorithm algorithm);

}  // namespace pi_server::auth
