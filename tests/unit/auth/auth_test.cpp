// The credential pieces alone: token file, bearer extraction, Host check, JWT claims,
// refusal log. Through the daemon: tests/integration/auth_*_test.cpp.
#include <gtest/gtest.h>

#include "auth/crypto.hpp"
#include "auth/host_check.hpp"
#include "auth/jwt_verifier.hpp"
#include "auth/refusal_log.hpp"
#include "auth/request_gate.hpp"
#include "auth/token_table.hpp"
#include "jwt_maker.hpp"
#include "manual_clock.hpp"

using namespace pi_server;
using namespace pi_server::auth;
using nlohmann::json;

TEST(TokenTable, ParsesCommentsHashesAndAdmin) {
  auto t = TokenTable::parse("# comment\n\n  tok1 alice\r\ntok2\tbob admin # trailing\n");
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->find("tok1")->name, "alice");
  EXPECT_FALSE(t->find("tok1")->admin);
  EXPECT_TRUE(t->find("tok2")->admin);
  EXPECT_FALSE(t->find("tok3"));
  EXPECT_FALSE(t->find("tok"));
}

TEST(TokenTable, RefusesBadLinesNamingTheLineButNeverTheToken) {
  for (auto [text, why] : std::vector<std::pair<std::string, std::string>>{
           {"secret-x\n", "line 1: want TOKEN PRINCIPAL"},
           {"ok a\nsecret-x a b c\n", "line 2: too many fields"},
           {"secret-x a root\n", "line 1: third field must be 'admin'"},
           {"sha256:abcd a\n", "line 1: sha256: must be followed by 64 hex digits"},
           {"secret-x a\nsecret-x b\n", "line 2: the same token appears twice"}}) {
    auto t = TokenTable::parse(text);
    ASSERT_FALSE(t) << text;
    EXPECT_EQ(t.error().rfind(why, 0), 0u) << t.error();
    EXPECT_EQ(t.error().find("secret-x"), std::string::npos) << t.error();
  }
}

TEST(Crypto, Base64UrlRoundTripsAndRefusesOtherAlphabets) {
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", std::string("\xff\xfe\x00", 3)})
    EXPECT_EQ(base64url_decode(base64url_encode(s)), s);
  EXPECT_FALSE(base64url_decode("a+b/"));
  EXPECT_FALSE(base64url_decode("abc="));
  EXPECT_FALSE(base64url_decode("a"));
  EXPECT_FALSE(base64url_decode("Zh")) << "non-zero leftover bits";
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

TEST(BearerToken, FromTheHeaderOrTheSubprotocol) {
  EXPECT_EQ(bearer_token("Bearer abc", ""), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  ", ""), "abc");
  EXPECT_EQ(bearer_token("", "pi-server.v1, bearer.xyz"), "xyz");
  EXPECT_EQ(bearer_token("", "bearer.xyz,pi-server.v1"), "xyz");
  EXPECT_EQ(bearer_token("Bearer h", "bearer.p"), "h") << "the header wins";
  EXPECT_FALSE(bearer_token("Basic abc", "pi-server.v1"));
  EXPECT_FALSE(bearer_token("Bearer ", "bearer."));
}

TEST(HostCheck, LoopbackBoundAndAllowedNamesOnly) {
  HostCheck loopback("127.0.0.1", {"Pi.Example"});
  for (auto h : {"localhost", "localhost:1", "a.localhost", "127.0.0.1:3141", "127.9.9.9", "[::1]",
                 "[::1]:80", "pi.example", "PI.EXAMPLE.:443"})
    EXPECT_TRUE(loopback.allows(h)) << h;
  for (auto h : {"", "evil.example", "localhost.evil.example", "10.0.0.1", "0.0.0.0", "[::]",
                 "[::1", "pi.example.evil"})
    EXPECT_FALSE(loopback.allows(h)) << h;
  HostCheck specific("192.0.2.1", {});
  EXPECT_TRUE(specific.allows("192.0.2.1:3141"));
  EXPECT_FALSE(specific.allows("192.0.2.2"));
  HostCheck all("0.0.0.0", {});
  EXPECT_TRUE(all.allows("192.0.2.2:1"));
  EXPECT_FALSE(all.allows("name.example"));
  HostCheck v6("::1", {});
  EXPECT_TRUE(v6.allows("[0:0::1]:1"));
}

namespace {
const std::string kSecret(32, 's');
SystemTime at(std::int64_t seconds) { return SystemTime(std::chrono::seconds(seconds)); }
}  // namespace

TEST(JwtVerifier, ClaimsAreCheckedWithTheSkewAllowance) {
  auto v = JwtVerifier::with_secret(kSecret, {"aud1", "iss1", std::chrono::seconds(10)});
  ASSERT_TRUE(v);
  json base = {{"sub", "s"}, {"aud", "aud1"}, {"iss", "iss1"}};
  auto check = [&](json claims, std::int64_t now) {
    auto r = v->verify(pi_server::testing::make_jwt_hs256(claims, kSecret), at(now));
    return r ? std::string("ok:") + r->name : std::string(to_string(r.failure()));
  };
  EXPECT_EQ(check(base, 1000), "ok:s");
  auto c = base;
  c["exp"] = 1000;
  EXPECT_EQ(check(c, 1010), "ok:s");
  EXPECT_EQ(check(c, 1011), "jwt_expired");
  c = base;
  c["nbf"] = 1000;
  EXPECT_EQ(check(c, 990), "ok:s");
  EXPECT_EQ(check(c, 989), "jwt_not_yet_valid");
  c = base;
  c["iat"] = 1000;
  EXPECT_EQ(check(c, 989), "jwt_issued_in_future");
  c = base;
  c["exp"] = "tomorrow";
  EXPECT_EQ(check(c, 0), "jwt_malformed");
  c = base;
  c.erase("aud");
  EXPECT_EQ(check(c, 0), "jwt_wrong_audience");
  c = base;
  c["iss"] = json::array({"iss1"});
  EXPECT_EQ(check(c, 0), "jwt_wrong_issuer");
  c = base;
  c["sub"] = "";
  EXPECT_EQ(check(c, 0), "jwt_no_subject");
  c = base;
  c["admin"] = "yes";
  EXPECT_FALSE(v->verify(pi_server::testing::make_jwt_hs256(c, kSecret), at(0))->admin) << "only true";
  EXPECT_EQ(to_string(v->verify("x.y", at(0)).failure()), "jwt_malformed");
  EXPECT_EQ(to_string(v->verify("a.b.c.d", at(0)).failure()), "jwt_malformed");
}

TEST(JwtVerifier, KeysAreCheckedWhenLoaded) {
  EXPECT_FALSE(JwtVerifier::with_secret("short", {}));
  EXPECT_FALSE(JwtVerifier::with_public_key_pem("not a key", {}));
  auto rsa = JwtVerifier::with_public_key_pem(pi_server::testing::TestKey::rsa().public_pem(), {});
  ASSERT_TRUE(rsa) << rsa.error();
  EXPECT_EQ(rsa->algorithm(), JwtVerifier::Algorithm::rs256);
  auto ec = JwtVerifier::with_public_key_pem(pi_server::testing::TestKey::ec_p256().public_pem(), {});
  ASSERT_TRUE(ec) << ec.error();
  EXPECT_EQ(ec->algorithm(), JwtVerifier::Algorithm::es256);
}

TEST(RefusalLog, OneLinePerAddressPerWindow) {
  pi_server::testing::ManualClock clock;
  RefusalLog log(clock);
  EXPECT_TRUE(log.note("10.0.0.1", Refusal::bad_token, "/"));
  EXPECT_FALSE(log.note("10.0.0.1", Refusal::bad_token, "/"));
  EXPECT_TRUE(log.note("10.0.0.2", Refusal::bad_token, "/"));
  clock.advance(RefusalLog::kWindow);
  EXPECT_TRUE(log.note("10.0.0.1", Refusal::missing_credentials, "/"));
}
