#include "protocol/frames.hpp"

#include <gtest/gtest.h>

using namespace pi_server;
using namespace pi_server::protocol;

TEST(Frames, WrapEventKeepsAgentBytesVerbatim) {
  std::string raw = "{\"type\":\"message_update\",\"d\":\"a\xE2\x80\xA8" "b\",\"n\":1.50}";
  std::string frame = wrap_event(json_quote("s\"1"), 42, raw);
  EXPECT_EQ(frame, "{\"type\":\"event\",\"sessionId\":\"s\\\"1\",\"seq\":42,\"event\":" + raw + "}");
  auto j = nlohmann::json::parse(frame);
  EXPECT_EQ(j["seq"], 42);
  EXPECT_EQ(j["sessionId"], "s\"1");
  EXPECT_EQ(j["event"]["type"], "message_update");
}

TEST(Frames, ResponseOmitsIdWhenRequestHadNone) {
  auto text = serialize(error_response("prompt", std::nullopt, ErrorCode::session_not_found, "x"));
  auto j = nlohmann::json::parse(text);
  EXPECT_FALSE(j.contains("id"));
  EXPECT_EQ(j["code"], "session_not_found");
  EXPECT_EQ(j["success"], false);
  EXPECT_EQ(text.rfind("{\"type\":\"response\"", 0), 0u);
}

TEST(Frames, ResponseCarriesEverySetField) {
  Response r = success_response("get_state", "id\n1", nlohmann::json{{"k", "v"}});
  r.session_id = "s";
  r.session_version = 3;
  auto j = nlohmann::json::parse(serialize(r));
  EXPECT_EQ(j, nlohmann::json::parse(
                   R"({"type":"response","id":"id\n1","command":"get_state","success":true,"data":{"k":"v"},"sessionId":"s","sessionVersion":3})"));
}

TEST(Frames, InvalidUtf8NeverThrows) {
  nlohmann::json data = {{"bad", std::string("\xff\xfe")}};
  EXPECT_NO_THROW(server_event("x", data));
}
