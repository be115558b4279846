// JWT authentication through the real daemon: HS256 with a secret file, RS256 and ES256
// with a public key, each refusal case as pinned (401 at the upgrade), the valid tokens let
// in as their sub. Keys and tokens are made in the test.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "daemon.hpp"
#include "jwt_maker.hpp"
#include "ws_client.hpp"

using namespace pi_server::testing;
using nlohmann::json;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

struct KeyFiles {
  TempDir dir;
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir.path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
};

json good_claims(const std::string& sub = "carol") {
  return {{"sub", sub},
          {"aud", "pi-server"},
          {"iss", "https://issuer.example"},
          {"iat", epoch_seconds()},
          {"exp", epoch_seconds(std::chrono::minutes(5))}};
}

unsigned upgrade_with(const Daemon& d, const std::string& token) {
  return try_upgrade(d.port(), {.bearer_token = token}).status;
}

std::vector<std::string> jwt_args(const std::string& key_flag, const std::string& path) {
  return {key_flag, path, "--jwt-audience", "pi-server", "--jwt-issuer", "https://issuer.example",
          "--jwt-clock-skew-seconds", "30"};
}

}  // namespace

TEST(AuthJwt, Hs256ValidTokenLetsTheSubjectInAndEveryBadOneGets401) {
  KeyFiles files;
  Daemon d({.args = jwt_args("--jwt-hs256-secret-file", files.write("secret", kSecret + "\n"))});

  WsClient carol(d.port(), {.bearer_token = make_jwt_hs256(good_claims(), kSecret)});
  ASSERT_TRUE(carol.next());
  auto line = connection_opened_as(d, "carol");
  ASSERT_TRUE(line);
  EXPECT_EQ((*line)["admin"], false);
  auto admin_claims = good_claims("dave");
  admin_claims["admin"] = true;
  WsClient dave(d.port(), {.subprotocols = "pi-server.v1, bearer." + make_jwt_hs256(admin_claims, kSecret)});
  EXPECT_EQ(dave.accepted_subprotocol(), "pi-server.v1");
  ASSERT_TRUE(dave.next());
  auto dave_line = connection_opened_as(d, "dave");
  ASSERT_TRUE(dave_line);
  EXPECT_EQ((*dave_line)["admin"], true);

  auto expired = good_claims();
  expired["exp"] = epoch_seconds(-std::chrono::minutes(2));  // beyond the 30 s skew
  auto within_skew = good_claims();
  within_skew["exp"] = epoch_seconds(-std::chrono::seconds(5));
  auto wrong_aud = good_claims();
  wrong_aud["aud"] = json::array({"someone-else", "another"});
  auto aud_list = good_claims();
  aud_list["aud"] = json::array({"someone-else", "pi-server"});
  auto wrong_iss = good_claims();
  wrong_iss["iss"] = "https://evil.example";
  auto not_yet = good_claims();
  not_yet["nbf"] = epoch_seconds(std::chrono::minutes(10));
  auto no_sub = good_claims();
  no_sub.erase("sub");

  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(expired, kSecret)), 401u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(within_skew, kSecret)), 101u) << "skew allowance";
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(wrong_aud, kSecret)), 401u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(aud_list, kSecret)), 101u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(wrong_iss, kSecret)), 401u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(not_yet, kSecret)), 401u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(no_sub, kSecret)), 401u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(good_claims(), kSecret + "x")), 401u) << "wrong signature";
  EXPECT_EQ(upgrade_with(d, make_jwt_unsigned(good_claims())), 401u) << "alg none";
  // A none token with a signature appended, and an HS256 token relabelled: still refused.
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(good_claims(), kSecret, "none")), 401u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(good_claims(), kSecret, "HS512")), 401u);
  EXPECT_EQ(upgrade_with(d, "a.b.c"), 401u);

  auto metrics = carol.request({{"type", "get_metrics"}, {"id", "m"}})["data"]["authRefusals"];
  EXPECT_EQ(metrics["jwt_expired"], 1);
  EXPECT_EQ(metrics["jwt_wrong_audience"], 1);
  EXPECT_EQ(metrics["jwt_wrong_issuer"], 1);
  EXPECT_EQ(metrics["jwt_not_yet_valid"], 1);
  EXPECT_EQ(metrics["jwt_no_subject"], 1);
  EXPECT_EQ(metrics["jwt_bad_signature"], 1);
  EXPECT_EQ(metrics["jwt_alg_refused"], 3);
  EXPECT_EQ(metrics["jwt_malformed"], 1);
}

TEST(AuthJwt, Rs256AndEs256ValidTokensAreAcceptedAndAlgorithmConfusionIsRefused) {
  for (bool ec : {false, true}) {
    SCOPED_TRACE(ec ? "ES256" : "RS256");
    auto key = ec ? TestKey::ec_p256() : TestKey::rsa();
    auto other = ec ? TestKey::ec_p256() : TestKey::rsa();
    KeyFiles files;
    auto pem = key.public_pem();
    Daemon d({.args = jwt_args("--jwt-public-key", files.write("key.pem", pem))});
    WsClient erin(d.port(), {.bearer_token = make_jwt(good_claims("erin"), key)});
    ASSERT_TRUE(erin.next());
    EXPECT_TRUE(connection_opened_as(d, "erin"));
    EXPECT_EQ(upgrade_with(d, make_jwt(good_claims(), other)), 401u) << "signed by another key";
    // The classic confusion: HS256 "signed" with the public key as the secret.
    EXPECT_EQ(upgrade_with(d, make_jwt_hs256(good_claims(), pem)), 401u);
    EXPECT_EQ(upgrade_with(d, make_jwt_unsigned(good_claims())), 401u);
    auto expired = good_claims();
    expired["exp"] = epoch_seconds(-std::chrono::hours(1));
    EXPECT_EQ(upgrade_with(d, make_jwt(expired, key)), 401u);
    auto metrics = erin.request({{"type", "get_metrics"}, {"id", "m"}})["data"]["authRefusals"];
    EXPECT_EQ(metrics["jwt_bad_signature"], 1);
    EXPECT_EQ(metrics["jwt_alg_refused"], 2);
    EXPECT_EQ(metrics["jwt_expired"], 1);
  }
}

TEST(AuthJwt, TokensAndJwtTogetherAndBadKeysExit2) {
  KeyFiles files;
  auto tokens = files.write("tokens", "static-token-abcdefghijkl frank\n");
  Daemon d({.args = {"--auth-tokens", tokens, "--jwt-hs256-secret-file", files.write("s", kSecret)}});
  EXPECT_EQ(upgrade_with(d, "static-token-abcdefghijkl"), 101u);
  EXPECT_EQ(upgrade_with(d, make_jwt_hs256(good_claims(), kSecret)), 101u);
  EXPECT_EQ(upgrade_with(d, "neither"), 401u);
}
