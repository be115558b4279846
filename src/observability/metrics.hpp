#pragma once
// Metric building blocks shared by get_metrics and GET /metrics (one set of in-memory
// numbers, two renderings): a fixed-bucket latency histogram and a writer for the
// Prometheus text exposition format (version 0.0.4), written by hand: the format is small,
// and Debian's prometheus-cpp would add a second registry to keep in sync with ours.
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pi_server::observability {

class Histogram {
 public:
  // Upper bounds in seconds (+Inf is implicit).
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1,     2.5,  5,     10,  60};
  void observe(double seconds);
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // Cumulative count of observations <= kBounds[i].
  std::uint64_t cumulative(std::size_t i) const;
  nlohmann::json to_json() const;  // {count, sumSeconds, buckets: {"0.001": n, ..., "+Inf": n}}

 private:
  std::array<std::uint64_t, kBounds.size() + 1> buckets_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

class PrometheusWriter {
 public:
  // Starts a metric family: # HELP and # TYPE lines. type: counter, gauge, histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void histogram(std::string_view name, const Labels& labels, const Histogram& h);
  const std::string& text() const { return out_; }

  static std::string escape_label(std::string_view value);

 private:
  std::string out_;
};

}  // namespace pi_server::observability
