#pragma once
// Checks text against the Prometheus exposition format 0.0.4 rules we rely on: HELP/TYPE
// before samples, metric and label name syntax, label value escaping, numeric values,
// counters named *_total, histogram buckets non-decreasing. Empty result = valid.
#include <cstring>
#include <map>
#include <regex>
#include <sstream>
#include <string>

namespace pi_server::testing {

// The value of an unlabelled Prometheus sample, or -1.
inline double prometheus_value(const std::string& body, const std::string& name) {
  auto at = body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + name.size() + 2));
}

inline std::string validate_prometheus(const std::string& text) {
  static const std::regex kSample(
      R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*")*)?\})? (-?[0-9][0-9.eE+-]*|\+Inf|-Inf|NaN)$)re");
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  static const std::regex kType(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::map<std::string, std::string> types;
  std::string current;
  double last_bucket = -1;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string where = "line " + std::to_string(n) + ": ";
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) continue;
    if (std::regex_match(line, m, kType)) {
      if (types.count(m[1])) return where + "family declared twice";
      types[m[1]] = m[2];
      current = m[1];
      last_bucket = -1;
      continue;
    }
    if (!std::regex_match(line, m, kSample)) return where + "malformed: " + line;
    std::string name = m[1];
    std::string base = name;
    if (!types.count(name)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        std::size_t len = std::strlen(suffix);
        if (base.size() > len && base.compare(base.size() - len, len, suffix) == 0) {
          base = base.substr(0, base.size() - len);
          break;
        }
      }
    }
    if (base != current || !types.count(base)) return where + "sample outside its family: " + line;
    if (types[base] == "counter" &&
        (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0))
      return where + "counter without _total: " + name;
    if (types[base] == "histogram" && name == base + "_bucket") {
      double v = std::stod(m[4]);
      if (v < last_bucket) return where + "bucket counts decrease";
      last_bucket = v;
    }
  }
  return "";
}

}  // namespace pi_server::testing
