#include "protocol/envelope.hpp"
#include "reliability/outcome_store.hpp"

#include <gtest/gtest.h>

using namespace pi_server;
using namespace pi_server::protocol;

namespace {
// One helper for every rejection: code, and which of type/id the response may echo.
void check_rejected(std::string_view input, ErrorCode code, std::optional<std::string> type = {},
                    std::optional<std::string> id = {}) {
  auto r = parse_envelope(input);
  ASSERT_FALSE(r) << input;
  EXPECT_EQ(r.failure().code, code) << input;
  EXPECT_EQ(r.failure().type, type) << input;
  EXPECT_EQ(r.failure().id, id) << input;
  EXPECT_FALSE(r.failure().message.empty());
}
}  // namespace

TEST(Envelope, RejectsBadInputWithACode) {
  check_rejected("not json", ErrorCode::invalid_command);
  check_rejected("[1,2,3]", ErrorCode::invalid_command);
  check_rejected("\"str\"", ErrorCode::invalid_command);
  check_rejected("{}", ErrorCode::invalid_command);
  check_rejected(R"({"id":"a"})", ErrorCode::invalid_command, std::nullopt, "a");
  check_rejected(R"({"type":7,"id":"a"})", ErrorCode::invalid_command, std::nullopt, "a");
  check_rejected(R"({"type":"prompt","id":5})", ErrorCode::invalid_command);
  check_rejected(R"({"type":"prompt","id":"p"})", ErrorCode::invalid_command, "prompt", "p");
  check_rejected(R"({"type":"prompt","sessionId":3})", ErrorCode::invalid_command, "prompt");
  check_rejected(R"({"type":"prompt","sessionId":"s","dependsOn":"x"})", ErrorCode::invalid_command,
                 "prompt");
  check_rejected(R"({"type":"prompt","sessionId":"s","ifSessionVersion":"1"})",
                 ErrorCode::invalid_command, "prompt");
  check_rejected(R"({"type":"delete_session"})", ErrorCode::invalid_command, "delete_session");
  check_rejected(R"({"type":"response","id":"r"})", ErrorCode::unknown_command, "response", "r");
}

TEST(Envelope, ClassifiesServerAndSessionCommands) {
  auto a = parse_envelope(R"({"type":"list_sessions","id":"1"})");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_server_command());
  auto b = parse_envelope(R"({"type":"some_future_pi_command","sessionId":"s"})");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->is_server_command());
  EXPECT_EQ(b->spec, &unknown_session_command());
  EXPECT_EQ(b->session_id, "s");
  EXPECT_FALSE(b->id.has_value());
}

TEST(Envelope, AgentCommandDropsEnvelopeFieldsAndRewritesId) {
  auto r = parse_envelope(
      R"({"type":"switch_session_file","id":"mine","sessionId":"s","idempotencyKey":"k","dependsOn":[],"ifSessionVersion":2,"sessionPath":"/x"})");
  ASSERT_TRUE(r);
  auto cmd = nlohmann::json::parse(agent_command_line(r.value(), "pi-server-9"));
  EXPECT_EQ(cmd, nlohmann::json::parse(R"({"type":"switch_session","id":"pi-server-9","sessionPath":"/x"})"));
}

TEST(Envelope, DeepNestingAndHugeDependsOnAreRefused) {
  std::string deep = R"({"type":"get_state","id":"d","sessionId":"s","a":)" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  check_rejected(deep, ErrorCode::invalid_command, "get_state", "d");
  std::string ok = R"({"type":"get_state","sessionId":"s","a":)" + std::string(60, '[') +
                   std::string(60, ']') + "}";
  EXPECT_TRUE(parse_envelope(ok));
  std::string deps = R"({"type":"abort","id":"z","sessionId":"s","dependsOn":[)";
  for (int i = 0; i < 33; ++i) deps += std::string(i ? "," : "") + "\"a\"";
  deps += "]}";
  check_rejected(deps, ErrorCode::invalid_command, "abort", "z");
}

TEST(Envelope, IdsAreBoundedAndNotEchoedWhenTooLong) {
  std::string big(257, 'x');
  std::string ok(256, 'y');
  EXPECT_TRUE(parse_envelope(R"({"type":"list_sessions","id":")" + ok + R"("})"));
  auto r = parse_envelope(R"({"type":"list_sessions","id":")" + big + R"("})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.failure().code, ErrorCode::invalid_command);
  EXPECT_FALSE(r.failure().id.has_value()) << "an oversize id is not sent back";
  for (const char* field : {"sessionId", "idempotencyKey"}) {
    auto bad = parse_envelope(std::string(R"({"type":"get_state","id":"i","sessionId":"s",")") +
                              field + R"(":")" + big + R"("})");
    ASSERT_FALSE(bad) << field;
    EXPECT_NE(bad.failure().message.find("longer than 256 bytes"), std::string::npos) << field;
  }
  EXPECT_FALSE(parse_envelope(R"({"type":"get_state","sessionId":"s","dependsOn":[")" + big + R"("]})"));
  EXPECT_FALSE(parse_envelope(R"({"type":")" + big + R"(","sessionId":"s"})"));
}

TEST(Envelope, ANulByteAnywhereIsMalformed) {
  std::string text = R"({"type":"list_sessions","id":"n"})";
  EXPECT_TRUE(parse_envelope(text));
  auto trailing = parse_envelope(text + std::string(1, '\0'));
  ASSERT_FALSE(trailing);
  EXPECT_EQ(trailing.failure().message, "Malformed JSON");
  EXPECT_FALSE(parse_envelope(text + " x")) << "like any other trailing byte";
}

TEST(Envelope, BigMembersOfRelayedCommandsStayTextAndReachTheAgentUnchanged) {
  std::string text(200 * 1024, 'a');
  std::string cmd = R"({"type":"prompt","id":"p","sessionId":"s","message":")" + text +
                    R"(","images":[{"k":1}]})";
  auto r = parse_envelope(cmd);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->raw_members.size(), 1u);
  EXPECT_EQ(r->raw_members[0].key, "message");
  EXPECT_FALSE(r->body.contains("message"));
  auto line = nlohmann::json::parse(agent_command_line(r.value(), "pi-server-1"));
  EXPECT_EQ(line["message"], text);
  EXPECT_EQ(line["id"], "pi-server-1");
  EXPECT_EQ(line["images"], nlohmann::json::parse(R"([{"k":1}])"));
  EXPECT_FALSE(line.contains("sessionId"));
  // Whitespace does not change the fingerprint; the content does.
  auto spaced = parse_envelope(R"({ "type" : "prompt", "id":"p", "sessionId":"s", "images":[ {"k":1} ], "message" : ")" +
                               text + R"(" })");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(pi_server::reliability::fingerprint(r.value()), pi_server::reliability::fingerprint(spaced.value()));
  std::string other = text;
  other.back() = 'b';
  auto changed = parse_envelope(R"({"type":"prompt","id":"p","sessionId":"s","message":")" + other + R"("})");
  EXPECT_NE(pi_server::reliability::fingerprint(r.value()), pi_server::reliability::fingerprint(changed.value()));
  // Field types are checked on big members too.
  std::string array = "[1";
  for (int i = 0; i < 50000; ++i) array += ",1";
  array += "]";
  auto wrong = parse_envelope(R"({"type":"prompt","id":"w","sessionId":"s","message":)" + array + "}");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.failure().message, "Field 'message' must be a string");
}

TEST(Envelope, CommandsTheDaemonReadsGetEveryFieldInTheBody) {
  std::string big(100 * 1024, 'v');
  auto r = parse_envelope(R"({"type":"extension_ui_response","sessionId":"s","uiRequestId":"u","value":")" + big + R"("})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->raw_members.empty());
  EXPECT_EQ(r->body["value"], big);
}
