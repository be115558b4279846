#pragma once
// Static bearer tokens from the --auth-tokens file (DESIGN §9). Each line is
//   TOKEN PRINCIPAL [admin]
// with '#' starting a comment and blank lines ignored. A TOKEN written "sha256:<64 hex>"
// is the SHA-256 of the real token, so the file need not hold the secret itself. Every
// token is kept only as its digest; a lookup hashes the presented token and compares it
// with every entry in constant time (CRYPTO_memcmp, no early exit).
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/crypto.hpp"
#include "pi_server/principal.hpp"
#include "pi_server/result.hpp"

namespace pi_server::auth {

class TokenTable {
 public:
  // Parses the file's text. Fails with "line N: why" (never quoting a token).
  static Result<TokenTable> parse(std::string_view text);
  // Reads and parses the file. Fails with the path and the reason.
  static Result<TokenTable> load(const std::filesystem::path& path);

  // The principal whose token this is, or nullopt.
  std::optional<Principal> find(std::string_view token) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Sha256Digest digest;
    Principal principal;
  };
  std::vector<Entry> entries_;
};

}  // namespace pi_server::auth
