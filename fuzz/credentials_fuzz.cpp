// What the listener does with credentials a client (or an operator's file) hands it: the
// token file parser and lookup, and the JWT verifier. Properties: no input crashes; a token
// file that parses admits exactly the tokens it lists; a JWT that is admitted carries a
// non-empty principal, and none is admitted unless its HMAC-SHA256 signature over the
// first two parts, made with the configured secret, is the third part.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/crypto.hpp"
#include "auth/jwt_verifier.hpp"
#include "auth/token_table.hpp"

using namespace pi_server;

namespace {
const std::string kSecret = "fuzzing-secret-of-at-least-32-bytes!";

const auth::JwtVerifier& verifier() {
  static const auto v = auth::JwtVerifier::with_secret(kSecret, {"aud", "iss", std::chrono::seconds(60)});
  if (!v) std::abort();
  return *v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // As a token file: a table that parsed finds the first field of every entry line (comments
  // cut at '#', fields split on blanks, a CR before the newline ignored) unless it is hashed.
  if (auto table = auth::TokenTable::parse(text)) {
    std::size_t start = 0;
    while (start < text.size()) {
      auto end = std::min(text.find('\n', start), text.size());
      std::string_view line = text.substr(start, end - start);
      start = end + 1;
      line = line.substr(0, line.find('#'));
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      auto first = line.find_first_not_of(" \t");
      if (first == std::string_view::npos) continue;
      line.remove_prefix(first);
      std::string_view token = line.substr(0, line.find_first_of(" \t"));
      if (token.starts_with("sha256:")) continue;
      if (!table->find(token)) std::abort();
    }
  }

  // As a JWT, at a fixed time.
  auto verified = verifier().verify(text, SystemTime(std::chrono::seconds(1700000000)));
  if (verified) {
    if (verified->name.empty()) std::abort();
    auto last_dot = text.rfind('.');
    if (last_dot == std::string_view::npos) std::abort();
    auto mac = auth::hmac_sha256(kSecret, text.substr(0, last_dot));
    auto signature = auth::base64url_decode(text.substr(last_dot + 1));
    if (!signature || *signature != std::string(mac.begin(), mac.end())) std::abort();
  }
  return 0;
}
