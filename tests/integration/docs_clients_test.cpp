// The clients shown in docs/clients.md, run against a daemon with the fake agent: the
// Python block is taken from the document itself, so the document cannot drift.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon.hpp"

namespace pi_server::testing {
namespace {

std::string fenced_block(const std::string& doc, const std::string& language) {
  auto start = doc.find("```" + language + "\n");
  if (start == std::string::npos) return "";
  start += 4 + language.size();
  auto end = doc.find("```", start);
  return doc.substr(start, end - start);
}

TEST(DocsClients, PythonClientStreamsAnAnswer) {
  if (run_command("/usr/bin/python3 -c 'import websockets; print(1)' 2>/dev/null").output != "1\n")
    GTEST_SKIP() << "python3-websockets is not installed (scripts/setup installs it)";
  std::ifstream in(std::string(PI_SERVER_SOURCE_DIR) + "/docs/clients.md");
  std::stringstream doc;
  doc << in.rdbuf();
  std::string code = fenced_block(doc.str(), "python");
  ASSERT_FALSE(code.empty()) << "docs/clients.md has no ```python block";
  TempDir dir;
  std::ofstream(dir.path() + "/client.py") << code;
  Daemon d;
  std::string out = run_command("/usr/bin/python3 " + dir.path() + "/client.py ws://127.0.0.1:" +
                                std::to_string(d.port()) + " 'stream 3' 2>&1")
                        .output;
  EXPECT_EQ(out, "w0 w1 w2 \n");
}

TEST(DocsClients, NodeClientStreamsAnAnswer) {
  const std::string node = std::string(PI_SERVER_SOURCE_DIR) + "/.deps/agent/node_modules/.bin/node";
  if (!std::filesystem::exists(node)) GTEST_SKIP() << node << " is missing (scripts/setup installs it)";
  Daemon d;
  std::string out = run_command(node + " " + PI_SERVER_SOURCE_DIR +
                                "/scripts/demo-client.mjs ws://127.0.0.1:" + std::to_string(d.port()) +
                                " 'stream 3' 2>/dev/null")
                        .output;
  EXPECT_EQ(out, "w0 w1 w2 \n");
}

}  // namespace
}  // namespace pi_server::testing
