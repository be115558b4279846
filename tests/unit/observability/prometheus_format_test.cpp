// The /metrics text must be valid Prometheus exposition format (0.0.4). This is a small
// checker for that format's rules, run over the writer's output (and over the daemon's
// real /metrics output in tests/integration/limits_test.cpp).
#include "prometheus_check.hpp"

#include <gtest/gtest.h>

#include "observability/metrics.hpp"

using namespace pi_server::observability;
using pi_server::testing::validate_prometheus;

TEST(PrometheusFormat, WriterOutputIsValid) {
  PrometheusWriter w;
  w.family("x_requests_total", "counter", "Requests.");
  w.sample("x_requests_total", {{"command", "prompt"}, {"outcome", "weird \"q\" \\ \n"}}, 3);
  w.family("x_up", "gauge", "Up.");
  w.sample("x_up", {}, 1.5);
  Histogram h;
  h.observe(0.002);
  h.observe(0.3);
  h.observe(100);
  w.family("x_duration_seconds", "histogram", "Durations.");
  w.histogram("x_duration_seconds", {}, h);
  EXPECT_EQ(validate_prometheus(w.text()), "") << w.text();
  EXPECT_NE(w.text().find("x_duration_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(w.text().find("x_duration_seconds_bucket{le=\"0.0025\"} 1\n"), std::string::npos);
  EXPECT_NE(w.text().find("x_duration_seconds_count 3\n"), std::string::npos);
}

TEST(PrometheusFormat, CheckerCatchesMistakes) {
  EXPECT_NE(validate_prometheus("no_family 1\n"), "");
  EXPECT_NE(validate_prometheus("# TYPE a counter\na 1\n"), "");  // counter without _total
  EXPECT_NE(validate_prometheus("# TYPE a_total counter\na_total{x=\"unterminated} 1\n"), "");
  EXPECT_NE(validate_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 3\n"), "")
      << "buckets must not decrease";
}

TEST(Histogram, CumulativeBuckets) {
  Histogram h;
  h.observe(0.0005);
  h.observe(0.0005);
  h.observe(7);
  EXPECT_EQ(h.cumulative(0), 2u);
  EXPECT_EQ(h.cumulative(Histogram::kBounds.size() - 1), 3u);
  EXPECT_EQ(h.count(), 3u);
}
