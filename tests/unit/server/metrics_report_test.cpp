// Every metric is listed once (MetricsReport::visit) and shows in both renderings.
#include "server/metrics_report.hpp"

#include <gtest/gtest.h>

#include <set>

#include "fakes.hpp"
#include "manual_clock.hpp"
#include "prometheus_check.hpp"

using namespace pi_server;
using nlohmann::json;
using pi_server::testing::FakeLauncher;
using pi_server::testing::ManualClock;

namespace {

class NoExecutor : public reliability::Executor {
 public:
  void execute(const reliability::Submission&, Reply) override {}
};

// Records what visit() lists.
class Listing : public server::MetricVisitor {
 public:
  void scalar(const server::MetricInfo& m, double) override { add(m); }
  void labeled(const server::MetricInfo& m, const std::vector<std::string>&,
               const server::LabeledSamples&) override {
    add(m);
  }
  void histogram(const server::MetricInfo& m, const observability::Histogram&) override { add(m); }
  void detail(std::string_view key, json) override { details.insert(std::string(key)); }
  std::vector<server::MetricInfo> metrics;
  std::set<std::string> details;

 private:
  void add(const server::MetricInfo& m) { metrics.push_back(m); }
};

struct Harness {
  ManualClock clock;
  ServerOptions options;
  ConnectionRegistry connections;
  FakeLauncher launcher;
  session::RelayStats relay;
  server::Responder responder{connections};
  session::SessionRegistry sessions{clock, clock, launcher, options, connections, relay};
  server::AdmissionPolicy admission{clock, clock, {}, {}, sessions};
  reliability::OutcomeStore outcomes{clock, 100, std::chrono::seconds(60)};
  NoExecutor executor;
  reliability::CommandPipeline pipeline{clock, clock, {outcomes, admission, sessions, executor, responder}, {}};
  server::FrontDoorStats front_door;
  auth::AuthStats auth;
  server::MetricsReport report{front_door, responder, sessions, connections,
                               pipeline,   outcomes,  admission, auth};
};

}  // namespace

TEST(MetricsReport, EveryGetMetricsNumberIsAlsoAPrometheusMetric) {
  Harness h;
  Listing listing;
  h.report.visit(listing);
  std::set<std::string> prom_names;
  for (const auto& m : listing.metrics) {
    EXPECT_FALSE(m.prom_name.empty()) << m.json_key << " has no Prometheus name";
    EXPECT_TRUE(prom_names.insert(std::string(m.prom_name)).second) << m.prom_name << " twice";
    EXPECT_FALSE(m.help.empty()) << m.prom_name;
  }
  // The ones that used to be in get_metrics only.
  for (auto name : {"pi_server_conflicts_total", "pi_server_dependency_failures_total",
                    "pi_server_lane_full_total", "pi_server_responses_undeliverable_total",
                    "pi_server_agent_responses_unmatched_total"})
    EXPECT_TRUE(prom_names.count(name)) << name;
  // Unbounded label sets stay out of Prometheus.
  EXPECT_EQ(listing.details, (std::set<std::string>{"laneDepths", "outboundQueues", "circuitBreakers"}));
}

TEST(MetricsReport, BothRenderingsCarryTheSameNumbers) {
  Harness h;
  h.front_door.commands_by_type["list_sessions"] = 3;
  h.responder.count_error(ErrorCode::conflict);
  h.responder.deliver(99, protocol::success_response("x", std::nullopt));  // nobody there
  h.auth.refusals_by_reason["bad_token"] = 2;
  json j = h.report.to_json();
  EXPECT_EQ(j["authRefusals"]["bad_token"], 2);
  EXPECT_EQ(j["commandsByType"]["list_sessions"], 3);
  EXPECT_EQ(j["errorsByCode"]["conflict"], 1);
  EXPECT_EQ(j["responsesUndeliverable"], 1);
  EXPECT_TRUE(j["pipeline"].contains("conflicts")) << "dotted keys nest";
  EXPECT_TRUE(j.contains("laneDepths"));
  std::string text = h.report.to_prometheus();
  EXPECT_EQ(pi_server::testing::validate_prometheus(text), "") << text;
  EXPECT_NE(text.find("pi_server_commands_received_total{type=\"list_sessions\"} 3"), std::string::npos);
  EXPECT_NE(text.find("pi_server_errors_total{code=\"conflict\"} 1"), std::string::npos);
  EXPECT_NE(text.find("pi_server_responses_undeliverable_total 1"), std::string::npos);
  EXPECT_NE(text.find("pi_server_auth_refusals_total{reason=\"bad_token\"} 2"), std::string::npos);
}

TEST(MetricsReport, HealthIsOkWithoutSessionsAndBreakers) {
  Harness h;
  json health = h.report.health();
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(health["healthy"], true);
  EXPECT_EQ(health["hasOpenCircuit"], false);
  BreakerOptions o;
  for (std::size_t i = 0; i < o.failure_threshold; ++i)
    h.admission.on_provider_result("acme", session::ProviderResult::failure);
  health = h.report.health();
  EXPECT_EQ(health["status"], "degraded");
  EXPECT_EQ(health["hasOpenCircuit"], true);
}
