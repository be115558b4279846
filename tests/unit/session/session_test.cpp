// Session without processes or sleeping: a fake agent behind AgentChannel, a fake
// connection in a real ConnectionRegistry, and ManualClock as both Clock and Scheduler.
#include "session/session.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fakes.hpp"
#include "manual_clock.hpp"
#include "observability/log.hpp"

using namespace pi_server;
using namespace std::chrono_literals;
using nlohmann::json;
using pi_server::testing::ManualClock;

namespace {

using pi_server::testing::FakeAgentChannel;
using pi_server::testing::FakeConnection;
using pi_server::testing::FakeLauncher;

class RecordingObserver : public session::SessionObserver {
 public:
  void on_agent_exited(session::Session&, const agent::ExitStatus& status) override {
    exits.push_back(status);
  }
  void on_session_quiet(session::Session&) override { ++quiet; }
  void on_provider_result(session::Session&, const std::string& provider,
                          ProviderResult result) override {
    provider_results.emplace_back(provider, result);
  }
  void on_run_finished(session::Session&, const std::string& provider,
                       std::chrono::steady_clock::duration length) override {
    runs.emplace_back(provider, length);
  }
  std::vector<agent::ExitStatus> exits;
  int quiet = 0;
  std::vector<std::pair<std::string, ProviderResult>> provider_results;
  std::vector<std::pair<std::string, std::chrono::steady_clock::duration>> runs;
};

protocol::Envelope envelope(const json& body) {
  auto parsed = protocol::parse_envelope(body.dump());
  if (!parsed) ADD_FAILURE() << parsed.failure().message;
  return parsed.value();
}

AgentOptions test_options() {
  AgentOptions o;
  o.default_model = "demo-provider/demo-model";
  o.ui_timeout = 10s;
  o.max_pending_ui = 2;
  o.restart_backoff = 500ms;
  o.restart_backoff_max = 3000ms;
  o.max_restarts = 5;
  o.restart_window = std::chrono::seconds(60);
  o.stderr_lines_per_second = 3;
  return o;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    connections.add(subscriber);
    connections.add(bystander);
    session = std::make_unique<session::Session>(context, "s1", agent::SessionLaunch{});
    auto started = session->start_agent();
    ASSERT_TRUE(started.is_ok()) << started.message();
    session->subscribe(subscriber->id());
  }

  FakeAgentChannel& agent() { return *launcher.agents.back(); }

  // Relays a command; its answer lands in `responses`.
  // What the daemon does with a session command: dialog answers go to answer_ui (the
  // session answers them), everything else is relayed.
  void relay(const json& body) {
    auto record = [this](protocol::Response r) { responses.push_back(std::move(r)); };
    if (body.value("type", "") == "extension_ui_response")
      session->answer_ui(envelope(body), record);
    else
      session->relay(envelope(body), record);
  }
  // The daemon-side id of the i-th line written to the agent.
  std::string agent_id(std::size_t i) { return agent().written_json(i).at("id"); }
  void answer(std::size_t i, bool success = true, json data = nullptr) {
    json line = {{"type", "response"}, {"id", agent_id(i)}, {"success", success}};
    if (!data.is_null()) line["data"] = data;
    agent().say(line);
  }
  std::vector<json> controls_of_type(const std::string& type) const {
    std::vector<json> out;
    for (const auto& c : subscriber->controls)
      if (c.value("type", "") == type) out.push_back(c);
    return out;
  }

  AgentOptions options = test_options();
  ManualClock clock;
  FakeLauncher launcher;
  ConnectionRegistry connections;
  session::RelayStats stats;
  RecordingObserver observer;
  session::SessionContext context{clock, clock, launcher, connections, stats, observer, options,
                                  std::size_t{1} << 20};
  std::shared_ptr<FakeConnection> subscriber = std::make_shared<FakeConnection>(next_connection_id());
  std::shared_ptr<FakeConnection> bystander = std::make_shared<FakeConnection>(next_connection_id());
  std::unique_ptr<session::Session> session;
  std::vector<protocol::Response> responses;
};

}  // namespace

TEST_F(SessionTest, StartAgentLaunchesWithTheSessionsLaunchAndId) {
  ASSERT_EQ(launcher.launches.size(), 1u);
  EXPECT_EQ(launcher.launches[0].session_id, "s1");
  EXPECT_TRUE(session->agent_running());
  EXPECT_EQ(session->agent_pid(), agent().pid());
  EXPECT_EQ(session->provider(), "demo-provider");
}

TEST_F(SessionTest, StartFailureComesBackAsStatusWithTheLaunchersMessage) {
  launcher.fail = true;
  session::Session other(context, "s2", agent::SessionLaunch{});
  auto started = other.start_agent();
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.message(), "Could not start the agent (pi): No such file or directory");
  EXPECT_FALSE(other.agent_running());
  EXPECT_FALSE(other.agent_pid().has_value());
  std::vector<protocol::Response> got;
  other.relay(envelope({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "s2"}, {"message", "hi"}}),
              [&](protocol::Response r) { got.push_back(std::move(r)); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].code, ErrorCode::agent_exited);
}

TEST_F(SessionTest, RelayWritesTheCommandUnderADaemonIdAndMapsTheAnswerBack) {
  relay({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "s1"}, {"message", "hi"}});
  ASSERT_EQ(agent().written.size(), 1u);
  json sent = agent().written_json(0);
  EXPECT_EQ(sent["type"], "prompt");
  EXPECT_EQ(sent["message"], "hi");
  EXPECT_FALSE(sent.contains("sessionId"));
  std::string daemon_id = sent.at("id");
  EXPECT_TRUE(daemon_id.starts_with("pi-server-")) << daemon_id;
  EXPECT_TRUE(responses.empty());

  answer(0);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].command, "prompt");
  EXPECT_EQ(responses[0].id, "c1");
  EXPECT_EQ(responses[0].session_id, "s1");
  EXPECT_TRUE(responses[0].success);
  EXPECT_EQ(responses[0].session_version, 1u);
  EXPECT_EQ(session->version(), 1u);

  // Two commands in flight get different daemon ids.
  relay({{"type", "get_state"}, {"id", "c2"}, {"sessionId", "s1"}});
  relay({{"type", "set_model"}, {"id", "c3"}, {"sessionId", "s1"}, {"provider", "p"}, {"modelId", "m"}});
  ASSERT_EQ(agent().written.size(), 3u);
  EXPECT_NE(agent_id(1), agent_id(2));
  EXPECT_NE(agent_id(1), daemon_id);
  // get_* never bumps the version, even when it succeeds.
  answer(1, true, {{"model", "m"}});
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[1].id, "c2");
  EXPECT_EQ(responses[1].command, "get_state");
  EXPECT_EQ(responses[1].session_version, 1u);
  EXPECT_EQ(responses[1].data, json({{"model", "m"}}));
  // A failed command does not bump it either.
  answer(2, false);
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_FALSE(responses[2].success);
  EXPECT_EQ(responses[2].session_version, 1u);
}

TEST_F(SessionTest, AnswersThatAreNotOursAreDroppedAndCounted) {
  relay({{"type", "steer"}, {"id", "c1"}, {"sessionId", "s1"}, {"message", "x"}});
  agent().say({{"type", "response"}, {"id", "pi-server-999"}, {"success", true}});
  agent().say({{"type", "response"}, {"id", "c1"}, {"success", true}});  // the client's id
  EXPECT_TRUE(responses.empty());
  EXPECT_EQ(stats.agent_responses_unmatched, 2u);
  answer(0);
  answer(0);  // a second answer to the same id is not delivered again
  EXPECT_EQ(responses.size(), 1u);
  EXPECT_EQ(stats.agent_responses_unmatched, 3u);
}

TEST_F(SessionTest, EventsGetSequenceNumbersAndReachOnlySubscribers) {
  agent().say({{"type", "agent_start"}});
  agent().say({{"type", "message_update"}, {"delta", "hé"}});
  ASSERT_EQ(subscriber->events.size(), 2u);
  EXPECT_TRUE(bystander->events.empty());
  EXPECT_EQ(subscriber->events[0].seq, 1u);
  EXPECT_EQ(subscriber->events[1].seq, 2u);
  EXPECT_EQ(subscriber->events[1].session_id, "s1");
  json frame = json::parse(subscriber->events[1].frame);
  EXPECT_EQ(frame["type"], "event");
  EXPECT_EQ(frame["sessionId"], "s1");
  EXPECT_EQ(frame["seq"], 2);
  EXPECT_EQ(frame["event"], json({{"type", "message_update"}, {"delta", "hé"}}));
  EXPECT_EQ(session->last_seq(), 2u);
  EXPECT_EQ(stats.events_relayed, 2u);
  EXPECT_EQ(stats.event_bytes_relayed,
            subscriber->events[0].frame.size() + subscriber->events[1].frame.size());

  // A consumer over its high-water mark drops the event; the count says so.
  subscriber->event_status = SendStatus::dropped;
  agent().say({{"type", "message_update"}});
  EXPECT_EQ(stats.events_dropped, 1u);
  // A connection that left the registry gets nothing and breaks nothing.
  connections.remove(subscriber->id());
  agent().say({{"type", "message_update"}});
  EXPECT_EQ(session->last_seq(), 4u);
  // Lines that are not JSON objects are not events.
  agent().say_raw("not json");
  EXPECT_EQ(stats.agent_lines_invalid, 1u);
  EXPECT_EQ(session->last_seq(), 4u);
}

TEST_F(SessionTest, EventEchoingACommandIdCarriesTheClientsId) {
  relay({{"type", "bash"}, {"id", "client-7"}, {"sessionId", "s1"}, {"command", "ls"}});
  agent().say({{"type", "bash_execution_update"}, {"id", agent_id(0)}, {"chunk", "a"}});
  ASSERT_EQ(subscriber->events.size(), 1u);
  EXPECT_EQ(json::parse(subscriber->events[0].frame)["event"]["id"], "client-7");
}

TEST_F(SessionTest, AgentExitAnswersEveryPendingCommandOnceWithAgentExited) {
  relay({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "s1"}, {"message", "a"}});
  relay({{"type", "get_state"}, {"id", "c2"}, {"sessionId", "s1"}});
  auto first_id = agent_id(0);
  EXPECT_FALSE(session->quiet());
  agent().exit_with({.exit_code = 3});

  ASSERT_EQ(responses.size(), 2u);
  std::set<std::string> ids;
  for (const auto& r : responses) {
    EXPECT_FALSE(r.success);
    EXPECT_EQ(r.code, ErrorCode::agent_exited);
    EXPECT_EQ(r.session_id, "s1");
    ASSERT_TRUE(r.error);
    EXPECT_NE(r.error->find("exit code 3"), std::string::npos) << *r.error;
    ids.insert(r.id.value_or(""));
  }
  EXPECT_EQ(ids, (std::set<std::string>{"c1", "c2"}));
  ASSERT_EQ(observer.exits.size(), 1u);
  EXPECT_EQ(observer.exits[0].exit_code, 3);
  EXPECT_EQ(stats.agent_exits, 1u);
  EXPECT_FALSE(session->agent_running());
  EXPECT_TRUE(session->quiet());

  // A late answer to an already-failed command goes nowhere.
  agent().say({{"type", "response"}, {"id", first_id}, {"success", true}});
  EXPECT_EQ(responses.size(), 2u);
  // A new command is refused at once.
  relay({{"type", "prompt"}, {"id", "c3"}, {"sessionId", "s1"}, {"message", "b"}});
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[2].code, ErrorCode::agent_exited);
  EXPECT_EQ(agent().written.size(), 2u);
}

TEST_F(SessionTest, StopClosesTheAgentGracefullyAndAnswersOnceReaped) {
  relay({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "s1"}, {"message", "a"}});
  int stopped = 0;
  session->stop([&] { ++stopped; });
  ASSERT_EQ(agent().stops.size(), 1u);
  EXPECT_EQ(agent().stops[0].first, options.eof_grace);
  EXPECT_EQ(agent().stops[0].second, options.term_grace);
  EXPECT_EQ(stopped, 0);
  EXPECT_EQ(session->summary()["state"], "stopping");
  agent().exit_with({.signal = 15});
  EXPECT_EQ(stopped, 1);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].code, ErrorCode::agent_exited);
  EXPECT_TRUE(observer.exits.empty());  // a stop is not a crash: no restart decision
}

TEST_F(SessionTest, DestroyingTheSessionDetachesAndKillsItsAgentAndCancelsTimers) {
  agent().say({{"type", "extension_ui_request"}, {"id", "u1"}, {"method", "confirm"}});
  EXPECT_EQ(clock.pending_timers(), 1u);
  auto a = launcher.agents.back();
  session.reset();
  EXPECT_TRUE(a->detached);
  EXPECT_TRUE(a->killed);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST_F(SessionTest, UnansweredDialogIsCancelledAfterUiTimeoutThenAnAnswerIsNotPending) {
  agent().say({{"type", "extension_ui_request"}, {"id", "u1"}, {"method", "confirm"}, {"title", "ok?"}});
  // Fire-and-forget methods are not tracked.
  agent().say({{"type", "extension_ui_request"}, {"id", "n1"}, {"method", "notify"}});
  EXPECT_EQ(session->pending_ui_ids(), (std::vector<std::string>{"u1"}));
  ASSERT_EQ(subscriber->events.size(), 2u);  // subscribers see the requests

  clock.advance(options.ui_timeout - 1ms);
  EXPECT_TRUE(agent().written.empty());
  clock.advance(1ms);
  ASSERT_EQ(agent().written.size(), 1u);
  EXPECT_EQ(agent().written_json(0),
            json({{"type", "extension_ui_response"}, {"id", "u1"}, {"cancelled", true}}));
  auto cancelled = controls_of_type("extension_ui_cancelled");
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0]["data"], json({{"sessionId", "s1"}, {"id", "u1"}, {"reason", "timeout"}}));
  EXPECT_TRUE(session->pending_ui_ids().empty());

  relay({{"type", "extension_ui_response"}, {"id", "r1"}, {"sessionId", "s1"},
         {"uiRequestId", "u1"}, {"confirmed", true}});
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_FALSE(responses[0].success);
  EXPECT_EQ(responses[0].code, ErrorCode::not_pending);
  EXPECT_EQ(responses[0].id, "r1");
  EXPECT_EQ(agent().written.size(), 1u);  // nothing more reached the agent
}

TEST_F(SessionTest, AnsweredDialogGoesToTheAgentWithoutEnvelopeFieldsAndItsTimerStops) {
  agent().say({{"type", "extension_ui_request"}, {"id", "u1"}, {"method", "input"}});
  relay({{"type", "extension_ui_response"}, {"id", "r1"}, {"sessionId", "s1"},
         {"uiRequestId", "u1"}, {"value", "typed"}});
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_TRUE(responses[0].success);
  EXPECT_EQ(responses[0].id, "r1");
  ASSERT_EQ(agent().written.size(), 1u);
  EXPECT_EQ(agent().written_json(0),
            json({{"type", "extension_ui_response"}, {"id", "u1"}, {"value", "typed"}}));
  clock.advance(options.ui_timeout * 2);
  EXPECT_EQ(agent().written.size(), 1u);  // no cancel after the answer
  EXPECT_TRUE(controls_of_type("extension_ui_cancelled").empty());
}

TEST_F(SessionTest, DialogAnswerInProtocol1xShapeReachesPiInItsOwnShape) {
  agent().say({{"type", "extension_ui_request"}, {"id", "u1"}, {"method", "confirm"}});
  agent().say({{"type", "extension_ui_request"}, {"id", "u2"}, {"method", "select"}});
  relay({{"type", "extension_ui_response"}, {"sessionId", "s1"}, {"requestId", "u1"},
         {"response", {{"method", "confirm"}, {"confirmed", true}}}});
  relay({{"type", "extension_ui_response"}, {"sessionId", "s1"}, {"requestId", "u2"},
         {"response", {{"method", "cancelled"}}}});
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_TRUE(responses[0].success);
  EXPECT_TRUE(responses[1].success);
  ASSERT_EQ(agent().written.size(), 2u);
  EXPECT_EQ(agent().written_json(0),
            json({{"type", "extension_ui_response"}, {"id", "u1"}, {"confirmed", true}}));
  EXPECT_EQ(agent().written_json(1),
            json({{"type", "extension_ui_response"}, {"id", "u2"}, {"cancelled", true}}));
}

TEST_F(SessionTest, DialogsOverTheLimitAreShownThenCancelled) {
  for (auto id : {"u1", "u2", "u3"})
    agent().say({{"type", "extension_ui_request"}, {"id", id}, {"method", "select"}});
  EXPECT_EQ(subscriber->events.size(), 3u);
  EXPECT_TRUE(agent().written.empty());
  clock.run_due();
  ASSERT_EQ(agent().written.size(), 1u);
  EXPECT_EQ(agent().written_json(0)["id"], "u3");
  auto cancelled = controls_of_type("extension_ui_cancelled");
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0]["data"]["reason"], "too_many_pending");
  EXPECT_EQ(session->pending_ui_ids(), (std::vector<std::string>{"u1", "u2"}));
}

TEST_F(SessionTest, AbortDismissesOpenDialogsBeforeItReachesTheAgent) {
  agent().say({{"type", "extension_ui_request"}, {"id", "u1"}, {"method", "confirm"}});
  relay({{"type", "abort"}, {"id", "a1"}, {"sessionId", "s1"}});
  ASSERT_EQ(agent().written.size(), 2u);
  EXPECT_EQ(agent().written_json(0)["cancelled"], true);
  EXPECT_EQ(agent().written_json(1)["type"], "abort");
  EXPECT_EQ(controls_of_type("extension_ui_cancelled").at(0)["data"]["reason"], "aborted");
}

TEST_F(SessionTest, AgentExitClosesDialogsWithoutWritingToTheDeadAgent) {
  agent().say({{"type", "extension_ui_request"}, {"id", "u1"}, {"method", "editor"}});
  agent().exit_with({.signal = 9});
  EXPECT_TRUE(agent().written.empty());
  EXPECT_EQ(controls_of_type("extension_ui_cancelled").at(0)["data"]["reason"], "agent_exited");
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST_F(SessionTest, RestartBackoffDoublesUpToItsCapAndTheWindowLimitsTheCount) {
  std::vector<std::chrono::milliseconds> delays;
  std::chrono::milliseconds d{0};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(session->claim_restart(d)) << i;
    delays.push_back(d);
    clock.advance(1s);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{500ms, 1000ms, 2000ms, 3000ms, 3000ms}));
  EXPECT_FALSE(session->claim_restart(d));  // max_restarts within restart_window
  EXPECT_EQ(session->restarts_total(), 5u);
  // The window is 60 s; the first claim was at t=0: at t=60s+1ms it has left the window.
  clock.advance(55s);
  EXPECT_FALSE(session->claim_restart(d));
  clock.advance(1ms);
  ASSERT_TRUE(session->claim_restart(d));
  EXPECT_EQ(d, 3000ms);  // four recent restarts remain: 500 * 2^4, capped
  // Once every restart is older than the window, backoff starts over.
  clock.advance(120s);
  ASSERT_TRUE(session->claim_restart(d));
  EXPECT_EQ(d, 500ms);
  EXPECT_EQ(session->restarts_total(), 7u);
}

TEST_F(SessionTest, StderrIsRateLimitedPerSecond) {
  log::init(log::Level::warn, log::Format::json);
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  ::testing::internal::CaptureStderr();
  EXPECT_NO_THROW(for (int i = 0; i < 10; ++i) agent().say_stderr("line " + std::to_string(i)));
  clock.advance(1s);
  EXPECT_NO_THROW(agent().say_stderr("after a second"));
  std::string err = ::testing::internal::GetCapturedStderr();
  log::init(log::Level::info, log::Format::json);
  // 3 per second logged, the other 7 summed up when the next window opens.
  EXPECT_EQ(count(err, "\"agent_stderr\""), 4u) << err;
  EXPECT_EQ(count(err, "\"agent_stderr_suppressed\""), 1u) << err;
  EXPECT_NE(err.find("\"lines\":7"), std::string::npos) << err;
  EXPECT_NE(err.find("\"bytes\":14"), std::string::npos) << "the line after a second is logged" << err;
  // Agent output may quote prompts: its text is only in agent_stderr_text, at debug.
  EXPECT_EQ(err.find("after a second"), std::string::npos) << err;
  EXPECT_EQ(err.find("line 0"), std::string::npos) << err;
}

TEST_F(SessionTest, RunLengthAndTimestampsComeFromTheClock) {
  auto created = session->summary()["createdAt"];
  EXPECT_EQ(created, "2026-01-01T00:00:00Z");
  relay({{"type", "prompt"}, {"id", "c1"}, {"sessionId", "s1"}, {"message", "a"}});
  answer(0);
  EXPECT_EQ(session->summary()["state"], "running");  // prompt answered: the run is under way
  agent().say({{"type", "agent_start"}});
  clock.advance(90s);
  agent().say({{"type", "message_end"},
               {"message", {{"role", "assistant"}, {"provider", "other"}, {"stopReason", "error"}}}});
  agent().say({{"type", "agent_settled"}});
  ASSERT_EQ(observer.runs.size(), 1u);
  EXPECT_EQ(observer.runs[0].first, "other");
  EXPECT_EQ(observer.runs[0].second, std::chrono::steady_clock::duration(90s));
  ASSERT_EQ(observer.provider_results.size(), 1u);
  EXPECT_EQ(observer.provider_results[0].second, session::SessionObserver::ProviderResult::failure);
  EXPECT_TRUE(session->quiet());
  EXPECT_GE(observer.quiet, 1);
  relay({{"type", "get_state"}, {"id", "c2"}, {"sessionId", "s1"}});
  auto summary = session->summary();
  EXPECT_EQ(summary["createdAt"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(summary["lastActivityAt"], "2026-01-01T00:01:30Z");
  EXPECT_EQ(summary["state"], "idle");
  EXPECT_EQ(summary["subscriberCount"], 1);
}

TEST_F(SessionTest, EventsAfterReplaysTheBufferAndReportsAGap) {
  // A small buffer: a handful of events fit.
  session::SessionContext small = context;
  small.event_buffer_bytes = 300;
  session::Session s(small, "s2", agent::SessionLaunch{});
  ASSERT_TRUE(s.start_agent().is_ok());
  for (int i = 0; i < 20; ++i) agent().say({{"type", "message_update"}, {"i", i}});
  EXPECT_EQ(s.last_seq(), 20u);
  auto all = s.events_after(0);
  EXPECT_TRUE(all.gap);
  ASSERT_FALSE(all.events.empty());
  EXPECT_LT(all.events.size(), 20u);
  EXPECT_EQ(all.events.back().first, 20u);
  EXPECT_EQ(all.first_seq, all.events.front().first);
  EXPECT_EQ(json::parse(*all.events.back().second)["event"]["i"], 19);

  auto recent = s.events_after(18);
  EXPECT_FALSE(recent.gap);
  ASSERT_EQ(recent.events.size(), 2u);
  EXPECT_EQ(recent.first_seq, 19u);

  auto none = s.events_after(20);
  EXPECT_FALSE(none.gap);
  EXPECT_TRUE(none.events.empty());
  EXPECT_EQ(none.first_seq, 21u);
}
