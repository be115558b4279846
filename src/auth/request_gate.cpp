#include "auth/request_gate.hpp"

#include <algorithm>
#include <cctype>

#include "observability/log.hpp"

namespace pi_server::auth {

namespace {
constexpr std::string_view kBearerProtocolPrefix = "bearer.";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

std::string body_for(Refusal reason) {
  switch (reason) {
    case Refusal::origin_not_allowed: return R"({"error":"origin not allowed"})";
    case Refusal::host_not_allowed: return R"({"error":"host not allowed"})";
    default: return R"({"error":"unauthorized"})";
  }
}
}  // namespace

std::optional<std::string_view> bearer_token(std::string_view authorization,
                                             std::string_view websocket_protocols) {
  authorization = trim(authorization);
  if (authorization.size() > 7 && iequals(authorization.substr(0, 7), "bearer ")) {
    auto token = trim(authorization.substr(7));
    if (!token.empty()) return token;
  }
  std::size_t i = 0;
  while (i < websocket_protocols.size()) {
    auto comma = websocket_protocols.find(',', i);
    if (comma == std::string_view::npos) comma = websocket_protocols.size();
    auto item = trim(websocket_protocols.substr(i, comma - i));
    i = comma + 1;
    if (item.size() > kBearerProtocolPrefix.size() &&
        item.substr(0, kBearerProtocolPrefix.size()) == kBearerProtocolPrefix)
      return item.substr(kBearerProtocolPrefix.size());
  }
  return std::nullopt;
}

RequestGate::RequestGate(const AuthOptions& options, const std::string& bound_host,
                         const Clock& clock, AuthStats& stats)
    : options_(options),
      clock_(clock),
      stats_(stats),
      refusal_log_(clock),
      host_check_(bound_host, options.allowed_hosts) {}

Result<std::unique_ptr<RequestGate>> RequestGate::create(const AuthOptions& options,
                                                         const std::string& bound_host,
                                                         const Clock& clock, AuthStats& stats) {
  std::unique_ptr<RequestGate> gate(new RequestGate(options, bound_host, clock, stats));
  if (auto loaded = gate->load_credentials(); !loaded) return loaded;
  return gate;
}

Status RequestGate::load_credentials() {
  std::optional<TokenTable> tokens;
  if (!options_.tokens_file.empty()) {
    auto table = TokenTable::load(options_.tokens_file);
    if (!table) return table.status();
    if (table->size() == 0)
      log::warn("token_file_empty", {{"path", options_.tokens_file.string()}});
    tokens = std::move(table.value());
  }
  std::optional<JwtVerifier> jwt;
  if (!options_.jwt_hs256_secret_file.empty() || !options_.jwt_public_key_file.empty()) {
    auto verifier = JwtVerifier::load(options_);
    if (!verifier) return verifier.status();
    jwt = std::move(verifier.value());
  }
  // Only now, with every file read, does the new set replace the old one.
  tokens_ = std::move(tokens);
  jwt_ = std::move(jwt);
  return Status::ok();
}

void RequestGate::reload() {
  if (!options_.enabled()) return;
  if (auto loaded = load_credentials(); !loaded) {
    ++stats_.reload_failures;
    log::error("credential_reload_failed", {{"error", loaded.message()}});
    return;
  }
  ++stats_.reloads;
  log::info("credentials_reloaded",
            {{"tokens", tokens_ ? tokens_->size() : 0},
             {"jwt", jwt_ ? std::string(to_string(jwt_->algorithm())) : std::string("off")}});
}

bool RequestGate::origin_allowed(std::string_view origin) const {
  return std::find(options_.allowed_origins.begin(), options_.allowed_origins.end(), origin) !=
         options_.allowed_origins.end();
}

Result<Principal, Refusal> RequestGate::authenticate(std::string_view token) {
  if (tokens_)
    if (auto principal = tokens_->find(token)) return *principal;
  if (jwt_ && std::count(token.begin(), token.end(), '.') == 2)
    return jwt_->verify(token, clock_.system_now());
  return Refusal::bad_token;
}

Admission RequestGate::refuse(Refusal reason, const RequestFacts& request) {
  ++stats_.refusals_by_reason[std::string(to_string(reason))];
  refusal_log_.note(request.remote_address, reason, path_of(request.target));
  Admission a;
  a.status = http_status(reason);
  a.body = body_for(reason);
  return a;
}

Admission RequestGate::admit(const RequestFacts& request) {
  auto path = path_of(request.target);
  if (!request.websocket_upgrade && (path == "/healthz" || path == "/readyz")) return {};
  if (!host_check_.allows(request.host)) return refuse(Refusal::host_not_allowed, request);
  if (request.websocket_upgrade && request.has_origin && !origin_allowed(request.origin))
    return refuse(Refusal::origin_not_allowed, request);
  bool needs_credentials =
      options_.enabled() &&
      (request.websocket_upgrade || (options_.metrics_auth && path == "/metrics"));
  if (!needs_credentials) return {};
  auto token = bearer_token(request.authorization,
                            request.websocket_upgrade ? request.websocket_protocols : "");
  if (!token) return refuse(Refusal::missing_credentials, request);
  auto principal = authenticate(*token);
  if (!principal) return refuse(principal.failure(), request);
  ++stats_.admitted_with_credentials;
  Admission a;
  a.principal = std::move(principal.value());
  return a;
}

}  // namespace pi_server::auth
