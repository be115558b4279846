#pragma once
// Makes JWTs and keys for tests (OpenSSL), so no test depends on a fixed key or token.
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace pi_server::testing {

// A fresh private key: RSA 2048 (RS256) or EC P-256 (ES256).
class TestKey {
 public:
  static TestKey rsa();
  static TestKey ec_p256();
  std::string public_pem() const;
  // The JWS signature of `data` (RS256: PKCS#1 v1.5; ES256: R||S).
  std::string sign(const std::string& data) const;
  bool is_ec() const { return ec_; }

 private:
  std::shared_ptr<void> key_;  // EVP_PKEY
  bool ec_ = false;
};

// Seconds since the epoch, offset from now.
std::int64_t epoch_seconds(std::chrono::seconds from_now = std::chrono::seconds(0));

// header.payload.signature; `alg` goes into the header as given.
std::string make_jwt_hs256(const nlohmann::json& claims, const std::string& secret,
                           const std::string& alg = "HS256");
std::string make_jwt(const nlohmann::json& claims, const TestKey& key);
// {"alg":"none"} and an empty signature.
std::string make_jwt_unsigned(const nlohmann::json& claims);

}  // namespace pi_server::testing
