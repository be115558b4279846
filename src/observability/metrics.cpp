#include "observability/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace pi_server::observability {

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++buckets_[i];
  ++count_;
  sum_ += seconds;
}

std::uint64_t Histogram::cumulative(std::size_t i) const {
  std::uint64_t total = 0;
  for (std::size_t k = 0; k <= i && k < buckets_.size(); ++k) total += buckets_[k];
  return total;
}

namespace {
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", v);
  }
  return buf;
}
}  // namespace

nlohmann::json Histogram::to_json() const {
  nlohmann::json buckets = nlohmann::json::object();
  for (std::size_t i = 0; i < kBounds.size(); ++i) buckets[number(kBounds[i])] = cumulative(i);
  buckets["+Inf"] = count_;
  return {{"count", count_}, {"sumSeconds", sum_}, {"buckets", buckets}};
}

std::string PrometheusWriter::escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void PrometheusWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void PrometheusWriter::sample(std::string_view name, const Labels& labels, double value) {
  out_.append(name);
  if (!labels.empty()) {
    out_.push_back('{');
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) out_.push_back(',');
      out_.append(labels[i].first).append("=\"").append(escape_label(labels[i].second)).append("\"");
    }
    out_.push_back('}');
  }
  out_.append(" ").append(number(value)).append("\n");
}

void PrometheusWriter::histogram(std::string_view name, const Labels& labels, const Histogram& h) {
  std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    Labels l = labels;
    l.emplace_back("le", number(Histogram::kBounds[i]));
    sample(bucket, l, static_cast<double>(h.cumulative(i)));
  }
  Labels inf = labels;
  inf.emplace_back("le", "+Inf");
  sample(bucket, inf, static_cast<double>(h.count()));
  sample(std::string(name) + "_sum", labels, h.sum());
  sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

}  // namespace pi_server::observability
