// The unit files in packaging/ (docs/operations.md, "Run under systemd") pass
// `systemd-analyze verify` without a single warning, and keep the hardening the issue asks for.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kPackaging = std::string(PI_SERVER_SOURCE_DIR) + "/packaging/";

TEST(UnitFiles, SystemdAnalyzeVerifyHasNothingToSay) {
  if (!std::filesystem::exists("/usr/bin/systemd-analyze"))
    GTEST_SKIP() << "systemd-analyze is missing (Debian package systemd): unit files not verified";
  pi_server::testing::TempDir dir;
  // verify checks that ExecStart= exists: point it at this build's binary.
  std::string service = read_file(kPackaging + "pi-server.service");
  const std::string installed = "/usr/bin/pi-server";
  ASSERT_NE(service.find(installed), std::string::npos);
  service.replace(service.find(installed), installed.size(), PI_SERVER_TEST_DAEMON);
  std::ofstream(dir.path() + "/pi-server.service") << service;
  std::filesystem::copy_file(kPackaging + "pi-server.socket", dir.path() + "/pi-server.socket");
  auto [status, output] = pi_server::testing::run_command(
      "cd " + dir.path() + " && systemd-analyze verify pi-server.service pi-server.socket 2>&1");
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "every warning (an unknown key, a typo) counts";
}

TEST(UnitFiles, TheServiceKeepsItsHardening) {
  const std::string service = read_file(kPackaging + "pi-server.service");
  for (const char* line :
       {"Type=notify", "WatchdogSec=", "DynamicUser=yes", "StateDirectory=pi-server", "ProtectSystem=strict",
        "ProtectHome=yes", "NoNewPrivileges=yes", "RestrictAddressFamilies=", "SystemCallFilter=@system-service",
        "LimitNOFILE=", "KillMode=mixed", "ExecReload=/bin/kill -HUP $MAINPID"})
    EXPECT_NE(service.find(std::string("\n") + line), std::string::npos) << line;
}

}  // namespace
