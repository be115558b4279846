// The command table is the one place a command's properties live: these tests pin the
// properties other modules rely on, and that every server command has a handler.
#include "protocol/commands.hpp"

#include <gtest/gtest.h>

#include <set>

#include "protocol/envelope.hpp"
#include "server/server_commands.hpp"
#include "server/session_commands.hpp"

using namespace pi_server;
using namespace pi_server::protocol;

TEST(CommandTable, NamesAreUniqueAndEveryServerCommandHasAHandler) {
  std::set<std::string_view> names;
  for (const auto& spec : all_commands()) {
    EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
    EXPECT_EQ(spec.is_server(), server::ServerCommands::has_handler(spec.name)) << spec.name;
    EXPECT_EQ(spec.family == CommandFamily::session_daemon,
              server::SessionCommands::has_handler(spec.name))
        << spec.name;
  }
  EXPECT_FALSE(server::ServerCommands::has_handler("prompt"));
  EXPECT_FALSE(server::ServerCommands::has_handler("no_such_command"));
}

TEST(CommandTable, PinsTheRulesOtherModulesRelyOn) {
  for (auto t : {"abort", "abort_bash", "abort_retry", "extension_ui_response"})
    EXPECT_EQ(spec_for(t).lane, LaneRule::bypass) << t;
  for (auto t : {"prompt", "steer", "follow_up"})
    EXPECT_EQ(spec_for(t).breaker, BreakerRule::provider) << t;
  EXPECT_EQ(spec_for("compact").breaker, BreakerRule::provider_call);
  EXPECT_EQ(spec_for("bash").breaker, BreakerRule::bash);
  for (auto t : {"get_state", "get_messages", "export_html", "extension_ui_response"})
    EXPECT_FALSE(spec_for(t).bumps_version) << t;
  for (auto t : {"prompt", "set_model", "new_session", "switch_session_file"})
    EXPECT_TRUE(spec_for(t).bumps_version) << t;
  EXPECT_EQ(spec_for("create_session").lane, LaneRule::session);
  EXPECT_EQ(spec_for("delete_session").lane, LaneRule::session);
  EXPECT_EQ(spec_for("list_sessions").lane, LaneRule::server);
  EXPECT_EQ(spec_for("prompt").timeout, TimeoutClass::long_running);
  EXPECT_EQ(spec_for("get_state").timeout, TimeoutClass::read);
  EXPECT_EQ(spec_for("switch_session_file").agent_type, "switch_session");
  // Unknown session commands are relayed under default rules.
  const auto& unknown = spec_for("some_future_command");
  EXPECT_EQ(&unknown, &unknown_session_command());
  EXPECT_EQ(unknown.family, CommandFamily::session_relayed);
  EXPECT_TRUE(unknown.needs_session);
  EXPECT_EQ(command_label("some_future_command"), "other");
  // A newer pi's get_* is a read: read timeout, no version bump.
  EXPECT_EQ(spec_for("get_future_thing").timeout, TimeoutClass::read);
  EXPECT_FALSE(spec_for("get_future_thing").bumps_version);
  EXPECT_EQ(command_label("prompt"), "prompt");
}

namespace {
void expect_invalid(const std::string& text, const std::string& message_part) {
  auto r = parse_envelope(text);
  ASSERT_FALSE(r) << text;
  EXPECT_EQ(r.failure().code, ErrorCode::invalid_command) << text;
  EXPECT_NE(r.failure().message.find(message_part), std::string::npos)
      << text << " -> " << r.failure().message;
  EXPECT_EQ(r.failure().id, "x") << "the id is echoed";
}
}  // namespace

TEST(CommandTable, FieldTypesAreCheckedBeforeAnythingIsRelayed) {
  expect_invalid(R"({"type":"prompt","id":"x","sessionId":"s","message":42})",
                 "Field 'message' must be a string");
  expect_invalid(R"({"type":"bash","id":"x","sessionId":"s","command":{}})",
                 "Field 'command' must be a string");
  expect_invalid(R"({"type":"set_auto_compaction","id":"x","sessionId":"s","enabled":"yes"})",
                 "Field 'enabled' must be a boolean");
  expect_invalid(R"({"type":"prompt","id":"x","sessionId":"s"})", "Missing field 'message'");
  expect_invalid(R"({"type":"switch_session","id":"x","sessionId":"s","afterSeq":-1})",
                 "Field 'afterSeq' must be a non-negative integer");
  expect_invalid(R"({"type":"get_command_history","id":"x","limit":"10"})",
                 "Field 'limit' must be an integer");
  expect_invalid(R"({"type":"set_lifecycle_events","id":"x"})", "Missing field 'enabled'");
  // Correct types pass; unknown extra fields are the agent's business.
  EXPECT_TRUE(parse_envelope(R"({"type":"prompt","sessionId":"s","message":"hi","extra":1})"));
  EXPECT_TRUE(parse_envelope(R"({"type":"future_cmd","sessionId":"s","anything":{}})"));
}

TEST(CommandTable, UnknownTypeWithoutSessionIsUnknownCommand) {
  auto r = parse_envelope(R"({"type":"no_such_command","id":"u1"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.failure().code, ErrorCode::unknown_command);
  EXPECT_EQ(r.failure().id, "u1");
  EXPECT_EQ(r.failure().type, "no_such_command");
  auto known = parse_envelope(R"({"type":"prompt","id":"u2","message":"m"})");
  ASSERT_FALSE(known);
  EXPECT_EQ(known.failure().code, ErrorCode::invalid_command) << "a known command lacks its session";
}
