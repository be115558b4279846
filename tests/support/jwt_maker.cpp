#include "jwt_maker.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdexcept>

#include "auth/crypto.hpp"

namespace pi_server::testing {
using nlohmann::json;

namespace {
EVP_PKEY* pkey(const std::shared_ptr<void>& k) { return static_cast<EVP_PKEY*>(k.get()); }

std::string b64(const std::string& s) { return auth::base64url_encode(s); }
}  // namespace

TestKey TestKey::rsa() {
  TestKey k;
  EVP_PKEY* key = EVP_RSA_gen(2048);
  if (!key) throw std::runtime_error("RSA keygen failed");
  k.key_.reset(key, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
  return k;
}

TestKey TestKey::ec_p256() {
  TestKey k;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (!key) throw std::runtime_error("EC keygen failed");
  k.key_.reset(key, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
  k.ec_ = true;
  return k;
}

std::string TestKey::public_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, pkey(key_));
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string TestKey::sign(const std::string& data) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pkey(key_));
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(data.data()), data.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (!ec_) return sig;
  // DER ECDSA-Sig-Value -> R || S, 32 bytes each.
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(es);
  return raw;
}

std::int64_t epoch_seconds(std::chrono::seconds from_now) {
  return std::chrono::duration_cast<std::chrono::seconds>(
             (std::chrono::system_clock::now() + from_now).time_since_epoch())
      .count();
}

std::string make_jwt_hs256(const json& claims, const std::string& secret, const std::string& alg) {
  std::string signed_part = b64(json{{"alg", alg}, {"typ", "JWT"}}.dump()) + "." + b64(claims.dump());
  auto mac = auth::hmac_sha256(secret, signed_part);
  return signed_part + "." + b64(std::string(mac.begin(), mac.end()));
}

std::string make_jwt(const json& claims, const TestKey& key) {
  std::string signed_part =
      b64(json{{"alg", key.is_ec() ? "ES256" : "RS256"}, {"typ", "JWT"}}.dump()) + "." +
      b64(claims.dump());
  return signed_part + "." + b64(key.sign(signed_part));
}

std::string make_jwt_unsigned(const json& claims) {
  return b64(json{{"alg", "none"}, {"typ", "JWT"}}.dump()) + "." + b64(claims.dump()) + ".";
}

}  // namespace pi_server::testing
