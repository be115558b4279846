#include "auth/host_check.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace pi_server::auth {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "Name:port", "[v6]:port", "v4" -> the host part, lower case, no trailing dot; v6
// without brackets.
std::string host_part(std::string_view value) {
  if (!value.empty() && value.front() == '[') {
    auto close = value.find(']');
    if (close == std::string_view::npos) return "";
    return lower(value.substr(1, close - 1));
  }
  auto colon = value.rfind(':');
  if (colon != std::string_view::npos && value.find(':') == colon) value = value.substr(0, colon);
  std::string out = lower(value);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

enum class Literal { none, loopback, unspecified, other };

Literal classify(const std::string& host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    auto a = ntohl(v4.s_addr);
    if ((a >> 24) == 127) return Literal::loopback;
    if (a == 0) return Literal::unspecified;
    return Literal::other;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return Literal::loopback;
    if (IN6_IS_ADDR_UNSPECIFIED(&v6)) return Literal::unspecified;
    // ::ffff:127.x.y.z is loopback too.
    if (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127) return Literal::loopback;
    return Literal::other;
  }
  return Literal::none;
}

// Two spellings of one IP address compare equal ("::1" and "0:0::1").
bool same_address(const std::string& a, const std::string& b) {
  unsigned char x[16]{}, y[16]{};
  for (int family : {AF_INET, AF_INET6})
    if (::inet_pton(family, a.c_str(), x) == 1 && ::inet_pton(family, b.c_str(), y) == 1)
      return std::memcmp(x, y, sizeof x) == 0;
  return a == b;
}

}  // namespace

HostCheck::HostCheck(std::string bound_host, std::vector<std::string> allowed) {
  bound_ = host_part(bound_host.find(':') != std::string::npos && bound_host.front() != '['
                         ? "[" + bound_host + "]"
                         : bound_host);
  bound_to_all_ = classify(bound_) == Literal::unspecified;
  for (auto& name : allowed) allowed_.push_back(host_part(name));
}

bool HostCheck::allows(std::string_view host_header) const {
  std::string host = host_part(host_header);
  if (host.empty()) return false;
  if (host == "localhost" || host.ends_with(".localhost")) return true;
  switch (classify(host)) {
    case Literal::loopback: return true;
    case Literal::unspecified: return false;
    case Literal::other:
      // An IP literal cannot be rebound; bound to every address, any of ours may be named.
      if (bound_to_all_ || same_address(host, bound_)) return true;
      break;
    case Literal::none: break;
  }
  return std::find(allowed_.begin(), allowed_.end(), host) != allowed_.end();
}

}  // namespace pi_server::auth
