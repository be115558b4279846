#include "pi_server/error_code.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace pi_server;

TEST(ErrorCode, RoundTripsEveryCode) {
  for (ErrorCode c : kAllErrorCodes) EXPECT_EQ(error_code_from_string(to_string(c)), c);
  EXPECT_FALSE(error_code_from_string("nope").has_value());
}

// docs/protocol.md must document every code the daemon can send.
TEST(ErrorCode, EveryCodeIsDocumented) {
  std::ifstream in(std::string(PI_SERVER_SOURCE_DIR) + "/docs/protocol.md");
  ASSERT_TRUE(in) << "docs/protocol.md missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  for (ErrorCode c : kAllErrorCodes)
    EXPECT_NE(doc.find("`" + std::string(to_string(c)) + "`"), std::string::npos) << to_string(c);
}
