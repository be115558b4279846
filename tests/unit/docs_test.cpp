// Docs that must stay true, checked where it is cheap (STYLE §10): every flag --help prints
// is documented in docs/configuration.md.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "daemon.hpp"

namespace {
std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST(Docs, EveryFlagIsInConfigurationMd) {
  std::string help = pi_server::testing::run_command(std::string(PI_SERVER_TEST_DAEMON) + " --help").output;
  ASSERT_NE(help.find("--listen"), std::string::npos) << help;
  std::string doc = read_file(std::string(PI_SERVER_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_FALSE(doc.empty());
  std::regex flag(R"((--[a-z][a-z0-9-]+))");
  std::set<std::string> flags;
  for (std::sregex_iterator it(help.begin(), help.end(), flag), end; it != end; ++it)
    flags.insert((*it)[1]);
  EXPECT_GT(flags.size(), 30u);
  for (const auto& f : flags) EXPECT_NE(doc.find("`" + f), std::string::npos) << f << " is not documented";
}
