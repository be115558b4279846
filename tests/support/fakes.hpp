#pragma once
// Test doubles for the core's seams: an agent behind AgentChannel (the test speaks for it),
// a launcher that hands those out, and a Connection that records what it is sent.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/agent_channel.hpp"
#include "pi_server/connection.hpp"
#include "pi_server/result.hpp"

namespace pi_server::testing {
using nlohmann::json;

// The agent as the session sees it: records what is written; the test speaks for it
// through the callbacks the session handed to the launcher.
class FakeAgentChannel : public agent::AgentChannel {
 public:
  FakeAgentChannel(pid_t pid, agent::AgentCallbacks callbacks)
      : pid_(pid), callbacks_(std::move(callbacks)) {}

  pid_t pid() const override { return pid_; }
  bool exited() const override { return exited_; }
  void write_line(std::string line) override { written.push_back(std::move(line)); }
  void stop(std::chrono::milliseconds eof_grace, std::chrono::milliseconds term_grace) override {
    stops.emplace_back(eof_grace, term_grace);
  }
  void kill_now() override { killed = true; }
  void detach() override {
    detached = true;
    callbacks_ = {};
  }

  // The agent prints a stdout line / a stderr line / ends.
  void say(const json& line) { callbacks_.on_line(line.dump()); }
  void say_raw(std::string_view line) { callbacks_.on_line(line); }
  void say_stderr(std::string_view line) { callbacks_.on_stderr_line(line); }
  void exit_with(agent::ExitStatus status) {
    exited_ = true;
    callbacks_.on_exit(status);
  }
  json written_json(std::size_t i) const { return json::parse(written.at(i)); }

  std::vector<std::string> written;
  std::vector<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> stops;
  bool killed = false;
  bool detached = false;

 private:
  pid_t pid_;
  agent::AgentCallbacks callbacks_;
  bool exited_ = false;
};

class FakeLauncher : public agent::AgentLauncher {
 public:
  Result<std::shared_ptr<agent::AgentChannel>> launch(const AgentOptions&,
                                                      const agent::SessionLaunch& launch,
                                                      agent::AgentCallbacks callbacks) override {
    launches.push_back(launch);
    if (fail) return Status::error("Could not start the agent (pi): No such file or directory");
    auto a = std::make_shared<FakeAgentChannel>(static_cast<pid_t>(1000 + launches.size()),
                                                std::move(callbacks));
    agents.push_back(a);
    return std::shared_ptr<agent::AgentChannel>(a);
  }
  bool fail = false;
  std::vector<agent::SessionLaunch> launches;
  std::vector<std::shared_ptr<FakeAgentChannel>> agents;
};

class FakeConnection : public Connection {
 public:
  explicit FakeConnection(std::uint64_t id, Principal principal = local_principal())
      : id_(id), principal_(std::move(principal)) {}
  std::uint64_t id() const override { return id_; }
  const Principal& principal() const override { return principal_; }
  std::string_view transport() const override { return "test"; }
  SendStatus send_control(Frame frame) override {
    controls.push_back(json::parse(*frame));
    return SendStatus::queued;
  }
  SendStatus send_event(Frame frame, std::string_view session_id, std::uint64_t seq) override {
    if (event_status == SendStatus::queued) events.push_back({std::string(session_id), seq, *frame});
    return event_status;
  }
  void close_gracefully() override {}
  std::size_t queued_bytes() const override { return 0; }

  struct Event {
    std::string session_id;
    std::uint64_t seq;
    std::string frame;
  };
  std::vector<json> controls;
  std::vector<Event> events;
  SendStatus event_status = SendStatus::queued;

 private:
  std::uint64_t id_;
  Principal principal_;
};

}  // namespace pi_server::testing
