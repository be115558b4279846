#include "protocol/json_scan.hpp"

#include <gtest/gtest.h>

using namespace pi_server::protocol;

TEST(JsonScan, ReadsTypeAndIdOfAnAgentLine) {
  auto h = scan_agent_line(R"({"id":"pi-server-7","type":"response","command":"get_state","success":true,"data":{"x":[1,{"type":"nested"}]}})");
  EXPECT_TRUE(h.is_object);
  EXPECT_EQ(h.type, "response");
  EXPECT_EQ(h.raw_id, "\"pi-server-7\"");
}

TEST(JsonScan, NestedTypeDoesNotWin) {
  auto h = scan_agent_line(R"({"message":{"type":"inner","s":"}\"{"},"type":"message_end"})");
  EXPECT_TRUE(h.is_object);
  EXPECT_EQ(h.type, "message_end");
  EXPECT_TRUE(h.raw_id.empty());
}

TEST(JsonScan, RejectsWhatIsNotOneObject) {
  for (const char* bad : {"", "this is not json", "[1,2]", "\"str\"", "{", "{\"a\":1",
                          "{\"a\":1}{\"b\":2}", "{\"a\" 1}", "{\"a\":\"unterminated}",
                          "{\"a\":1,}", "{a:1}"}) {
    EXPECT_FALSE(scan_agent_line(bad).is_object) << bad;
  }
  EXPECT_TRUE(scan_agent_line("  {\"a\" : [ ] , \"b\":null}  ").is_object);
  EXPECT_TRUE(scan_agent_line("{}").is_object);
}

TEST(JsonScan, EscapedStringsAreSkippedCorrectly) {
  auto h = scan_agent_line(R"({"text":"a\\\"b\\","type":"x"})");
  EXPECT_TRUE(h.is_object);
  EXPECT_EQ(h.type, "x");
}

TEST(JsonScan, SimpleStringOnlyForUnescaped) {
  EXPECT_EQ(simple_string("\"abc\"").value(), "abc");
  EXPECT_FALSE(simple_string("\"a\\nb\"").has_value());
  EXPECT_FALSE(simple_string("7").has_value());
}

TEST(Utf8, ValidatesAndRepairs) {
  EXPECT_TRUE(is_valid_utf8("plain ascii, long enough for the fast path"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x80\xA8 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("bad \xFF byte"));
  EXPECT_FALSE(is_valid_utf8("overlong \xC0\xAF"));
  EXPECT_FALSE(is_valid_utf8("surrogate \xED\xA0\x80"));
  EXPECT_FALSE(is_valid_utf8("cut \xE2\x80"));
  std::string repaired = sanitize_utf8("{\"t\":\"a\xFF" "b\"}");
  EXPECT_EQ(repaired, "{\"t\":\"a\xEF\xBF\xBD" "b\"}");
  EXPECT_TRUE(is_valid_utf8(repaired));
  EXPECT_TRUE(scan_agent_line(repaired).is_object);
}
