#include "auth/jwt_verifier.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "auth/crypto.hpp"
#include "pi_server/read_file.hpp"

namespace pi_server::auth {
using nlohmann::json;

namespace {

EVP_PKEY* pkey(const std::shared_ptr<void>& key) { return static_cast<EVP_PKEY*>(key.get()); }

std::optional<json> decode_json_object(std::string_view part) {
  auto bytes = base64url_decode(part);
  if (!bytes) return std::nullopt;
  auto j = json::parse(*bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// JWS ES256 signatures are R || S (32 bytes each); OpenSSL verifies DER ECDSA-Sig-Value.
std::optional<std::string> es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (!sig) return std::nullopt;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (!r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  int len = i2d_ECDSA_SIG(sig, nullptr);
  std::string der(len > 0 ? static_cast<std::size_t>(len) : 0, '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (len <= 0 || i2d_ECDSA_SIG(sig, &out) != len) der.clear();
  ECDSA_SIG_free(sig);
  if (der.empty()) return std::nullopt;
  return der;
}

bool digest_verify(EVP_PKEY* key, std::string_view data, std::string_view signature) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// A NumericDate claim (seconds since the epoch), when present and a number.
std::optional<double> numeric_date(const json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

}  // namespace

std::string_view to_string(JwtVerifier::Algorithm algorithm) {
  switch (algorithm) {
    case JwtVerifier::Algorithm::hs256: return "HS256";
    case JwtVerifier::Algorithm::rs256: return "RS256";
    case JwtVerifier::Algorithm::es256: return "ES256";
  }
  return "?";
}

Result<JwtVerifier> JwtVerifier::with_secret(std::string secret, JwtClaimRules rules) {
  if (secret.size() < 32)
    return Status::error("the HS256 secret must be at least 32 bytes (RFC 7518 §3.2), got " +
                         std::to_string(secret.size()));
  JwtVerifier v(Algorithm::hs256, std::move(rules));
  v.secret_ = std::move(secret);
  return v;
}

Result<JwtVerifier> JwtVerifier::with_public_key_pem(std::string_view pem, JwtClaimRules rules) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return Status::error("out of memory");
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!key) return Status::error("not a PEM public key (want -----BEGIN PUBLIC KEY-----)");
  std::shared_ptr<void> owned(key, [](void* k) { EVP_PKEY_free(static_cast<EVP_PKEY*>(k)); });
  Algorithm algorithm;
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(key) < 2048)
        return Status::error("RSA key too small for RS256 (" + std::to_string(EVP_PKEY_get_bits(key)) +
                             " bits; want at least 2048)");
      algorithm = Algorithm::rs256;
      break;
    case EVP_PKEY_EC: {
      char group[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                         &len) != 1 ||
          std::string_view(group) != "prime256v1")
        return Status::error(std::string("EC key on curve '") + group +
                             "': ES256 needs P-256 (prime256v1)");
      algorithm = Algorithm::es256;
      break;
    }
    default:
      return Status::error("unsupported key type (want RSA for RS256 or EC P-256 for ES256)");
  }
  JwtVerifier v(algorithm, std::move(rules));
  v.key_ = std::move(owned);
  return v;
}

Result<JwtVerifier> JwtVerifier::load(const AuthOptions& options) {
  JwtClaimRules rules{options.jwt_audience, options.jwt_issuer, options.jwt_clock_skew};
  if (!options.jwt_hs256_secret_file.empty()) {
    const auto& path = options.jwt_hs256_secret_file;
    auto secret = read_file(path);
    if (!secret) return Status::error("cannot read JWT secret file " + path.string());
    while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r')) secret->pop_back();
    auto v = with_secret(std::move(*secret), rules);
    if (!v) return Status::error("JWT secret file " + path.string() + ": " + v.error());
    return v;
  }
  const auto& path = options.jwt_public_key_file;
  auto pem = read_file(path);
  if (!pem) return Status::error("cannot read JWT public key " + path.string());
  auto v = with_public_key_pem(*pem, rules);
  if (!v) return Status::error("JWT public key " + path.string() + ": " + v.error());
  return v;
}

bool JwtVerifier::signature_ok(std::string_view signed_part, std::string_view signature) const {
  switch (algorithm_) {
    case Algorithm::hs256: {
      auto mac = hmac_sha256(secret_, signed_part);
      return constant_time_equal(
          std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()), signature);
    }
    case Algorithm::rs256:
      return digest_verify(pkey(key_), signed_part, signature);
    case Algorithm::es256: {
      auto der = es256_to_der(signature);
      return der && digest_verify(pkey(key_), signed_part, *der);
    }
  }
  return false;
}

Result<Principal, Refusal> JwtVerifier::verify(std::string_view token, SystemTime now) const {
  auto first = token.find('.');
  auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return Refusal::jwt_malformed;
  auto header = decode_json_object(token.substr(0, first));
  if (!header) return Refusal::jwt_malformed;
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string()) return Refusal::jwt_malformed;
  if (alg->get<std::string>() != to_string(algorithm_)) return Refusal::jwt_alg_refused;
  auto signature = base64url_decode(token.substr(second + 1));
  if (!signature) return Refusal::jwt_malformed;
  if (!signature_ok(token.substr(0, second), *signature)) return Refusal::jwt_bad_signature;

  // Only a signed payload is worth parsing.
  auto claims = decode_json_object(token.substr(first + 1, second - first - 1));
  if (!claims) return Refusal::jwt_malformed;
  double t = std::chrono::duration<double>(now.time_since_epoch()).count();
  double skew = static_cast<double>(rules_.clock_skew.count());
  for (const char* name : {"exp", "nbf", "iat"})
    if (claims->contains(name) && !(*claims)[name].is_number()) return Refusal::jwt_malformed;
  if (auto exp = numeric_date(*claims, "exp"); exp && t > *exp + skew) return Refusal::jwt_expired;
  if (auto nbf = numeric_date(*claims, "nbf"); nbf && t + skew < *nbf)
    return Refusal::jwt_not_yet_valid;
  if (auto iat = numeric_date(*claims, "iat"); iat && t + skew < *iat)
    return Refusal::jwt_issued_in_future;
  if (!rules_.audience.empty()) {
    bool match = false;
    if (auto aud = claims->find("aud"); aud != claims->end()) {
      if (aud->is_string()) match = aud->get<std::string>() == rules_.audience;
      if (aud->is_array())
        for (const auto& a : *aud) match = match || (a.is_string() && a.get<std::string>() == rules_.audience);
    }
    if (!match) return Refusal::jwt_wrong_audience;
  }
  if (!rules_.issuer.empty()) {
    auto iss = claims->find("iss");
    if (iss == claims->end() || !iss->is_string() || iss->get<std::string>() != rules_.issuer)
      return Refusal::jwt_wrong_issuer;
  }
  auto sub = claims->find("sub");
  if (sub == claims->end() || !sub->is_string() || sub->get<std::string>().empty())
    return Refusal::jwt_no_subject;
  auto admin = claims->find("admin");
  return Principal{sub->get<std::string>(), admin != claims->end() && *admin == true};
}

}  // namespace pi_server::auth
