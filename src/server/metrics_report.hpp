#pragma once
// Every number an operator can read, listed once (MetricsReport::visit) and rendered three
// ways: get_metrics (JSON), GET /metrics (Prometheus text) and health_check. A metric is
// added in visit() only; each rendering follows.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connections/connection_registry.hpp"
#include "observability/metrics.hpp"
#include "reliability/command_pipeline.hpp"
#include "reliability/outcome_store.hpp"
#include "server/admission_policy.hpp"
#include "server/responder.hpp"
#include "session/session_registry.hpp"

namespace pi_server::server {

// Counters the front door keeps.
struct FrontDoorStats {
  // Commands parsed, by type for server commands ("session_command" for the rest,
  // "invalid" for what did not parse).
  std::map<std::string, std::uint64_t> commands_by_type;
  std::uint64_t connections_total = 0;
  // How late the loop runs a timer due every 250 ms: a blocked loop shows up here.
  observability::Histogram loop_stall;
  double loop_stall_max_seconds = 0;
  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  // The TCP listener's socket counts; unset with --no-listen.
  std::function<ListenerStats()> listener;
};

enum class MetricKind { gauge, counter };

struct MetricInfo {
  // Where get_metrics shows it ("a.b" nests); empty: not in get_metrics.
  std::string_view json_key;
  // Its Prometheus name; empty: not in /metrics.
  std::string_view prom_name;
  MetricKind kind;
  std::string_view help;
  // get_metrics shows value * json_scale (seconds as milliseconds).
  double json_scale = 1;
};

using LabeledSamples = std::vector<std::pair<std::vector<std::string>, double>>;

class MetricVisitor {
 public:
  virtual ~MetricVisitor() = default;
  virtual void scalar(const MetricInfo& metric, double value) = 0;
  // One sample per tuple of label values; get_metrics nests them by value, in label order.
  virtual void labeled(const MetricInfo& metric, const std::vector<std::string>& label_names,
                       const LabeledSamples& samples) = 0;
  virtual void histogram(const MetricInfo& metric, const observability::Histogram& h) = 0;
  // Detail only get_metrics shows (per connection, per lane: unbounded label sets).
  virtual void detail(std::string_view json_key, nlohmann::json value) = 0;
};

class MetricsReport {
 public:
  MetricsReport(const FrontDoorStats& front_door, const Responder& responder,
                const session::SessionRegistry& sessions, const ConnectionRegistry& connections,
                const reliability::CommandPipeline& pipeline,
                const reliability::OutcomeStore& outcomes, const AdmissionPolicy& admission)
      : front_door_(front_door),
        responder_(responder),
        sessions_(sessions),
        connections_(connections),
        pipeline_(pipeline),
        outcomes_(outcomes),
        admission_(admission) {}

  // Every metric, once.
  void visit(MetricVisitor& visitor) const;
  nlohmann::json to_json() const;    // get_metrics
  std::string to_prometheus() const;  // GET /metrics
  nlohmann::json health() const;     // health_check

 private:
  const FrontDoorStats& front_door_;
  const Responder& responder_;
  const session::SessionRegistry& sessions_;
  const ConnectionRegistry& connections_;
  const reliability::CommandPipeline& pipeline_;
  const reliability::OutcomeStore& outcomes_;
  const AdmissionPolicy& admission_;
};

}  // namespace pi_server::server
