// The config file and its precedence (docs/configuration.md, "Config file"): every kind of
// refusal names the file, line and key; a flag on the command line wins over the file.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config/flags.hpp"
#include "daemon.hpp"

namespace pi_server::config {
namespace {

class ConfigFile : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    std::string path = dir_.path() + "/pi-server.toml";
    std::ofstream(path) << text;
    return path;
  }
  // Parses `flags` plus --config with `text`; the base flags keep the test hermetic.
  Result<CommandLine, ParseStop> parse(const std::string& text, std::vector<std::string> flags = {}) {
    std::vector<std::string> args = {"--state-dir", dir_.path(), "--config", write(text)};
    args.insert(args.end(), flags.begin(), flags.end());
    return parse_arguments(args);
  }
  // The one-line error for a file holding `text`.
  std::string error(const std::string& text, std::vector<std::string> flags = {}) {
    auto r = parse(text, flags);
    if (r) return "(accepted)";
    EXPECT_EQ(r.failure().exit_code, 2);
    const std::string& out = r.failure().output;
    EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line: " << out;
    return out;
  }
  std::string path() const { return dir_.path() + "/pi-server.toml"; }
  testing::TempDir dir_;
};

TEST_F(ConfigFile, ValuesFromTheFileAreUsed) {
  auto r = parse(
      "listen = \"127.0.0.1:4000\"\nmax-sessions = 7\nrate-limit = 2.5\nno-agent-restart = true\n"
      "allow-origin = [\n  \"https://a.example\",\n  \"https://b.example\",\n]\n");
  ASSERT_TRUE(r) << r.failure().output;
  EXPECT_EQ(r->options.listen_port, 4000);
  EXPECT_EQ(r->options.max_sessions, 7u);
  EXPECT_DOUBLE_EQ(r->options.rate_limit_per_second, 2.5);
  EXPECT_FALSE(r->options.agent.restart);
  EXPECT_EQ(r->options.auth.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
}

TEST_F(ConfigFile, TheCommandLineWinsOverTheFile) {
  auto r = parse("max-sessions = 7\nallow-origin = [\"https://file.example\"]\nlog-level = \"warn\"\n",
                 {"--max-sessions", "9", "--allow-origin", "https://flag.example"});
  ASSERT_TRUE(r) << r.failure().output;
  EXPECT_EQ(r->options.max_sessions, 9u);
  // A repeatable flag replaces the file's list, it does not add to it.
  EXPECT_EQ(r->options.auth.allowed_origins, std::vector<std::string>{"https://flag.example"});
  EXPECT_EQ(r->log_level, log::Level::warn);  // not on the command line: the file's
}

TEST_F(ConfigFile, AFlagOverridingABadFileValueStillReportsTheFile) {
  // The file is wrong even when the command line hides its value.
  EXPECT_EQ(error("no-listen = 3\n", {"--no-listen"}),
            "pi-server: " + path() + ":1: key 'no-listen': want true or false, not an integer\n");
}

TEST_F(ConfigFile, EachRefusalNamesTheFileLineAndKey) {
  const std::string p = "pi-server: " + path();
  EXPECT_EQ(error("# comment\nmax-sesions = 3\n"),
            p + ":2: key 'max-sesions': unknown key (keys are the long flag names of pi-server --help)\n");
  EXPECT_EQ(error("max_sessions = 3\n"),
            p + ":1: key 'max_sessions': unknown key (keys are the long flag names of pi-server --help)\n");
  EXPECT_EQ(error("[limits]\nmax-sessions = 3\n"),
            p + ":1: key 'limits': unknown key (keys are the long flag names of pi-server --help)\n");
  EXPECT_EQ(error("help = true\n"), p + ":1: key 'help': not allowed in a config file\n");
  EXPECT_EQ(error("config = \"other.toml\"\n"), p + ":1: key 'config': not allowed in a config file\n");
  EXPECT_EQ(error("stdio = \"yes\"\n"), p + ":1: key 'stdio': want true or false, not a string\n");
  EXPECT_EQ(error("listen = [\"127.0.0.1:1\"]\n"), p + ":1: key 'listen': takes one value, not an array\n");
  EXPECT_EQ(error("listen = true\n"), p + ":1: key 'listen': want a string or a number, not a boolean\n");
  EXPECT_EQ(error("agent-env = [[\"A\"]]\n"),
            p + ":1: key 'agent-env': array elements must be strings or numbers, not an array\n");
  EXPECT_EQ(error("\nmax-sessions = \"many\"\n"),
            p + ":2: key 'max-sessions': --max-sessions: want a number > 0, not 'many'\n");
  EXPECT_EQ(error("max-sessions = 0\n"),
            p + ":1: key 'max-sessions': --max-sessions: want a number > 0, not '0'\n");
  EXPECT_EQ(error("agent-max-restarts = \"x\"\n"),
            p + ":1: key 'agent-max-restarts': Could not convert: --agent-max-restarts = x\n");
  EXPECT_EQ(error("log-level = \"loud\"\n"),
            p + ":1: key 'log-level': want trace|debug|info|warn|error, not 'loud'\n");
  EXPECT_EQ(error("log-format = \"xml\"\n"), p + ":1: key 'log-format': want json|text, not 'xml'\n");
  EXPECT_EQ(error("listen = \"nowhere\"\n"), p + ":1: key 'listen': want HOST:PORT, not 'nowhere'\n");
  EXPECT_EQ(error("listen = \"10.0.0.1:80\"\n"),
            p + ":1: key 'listen': refusing to listen on non-loopback 10.0.0.1 without "
                "authentication: give --auth-tokens or a JWT key (or --insecure-no-auth)\n");
  EXPECT_EQ(error("agent-command = \"\"\n"), p + ":1: key 'agent-command': is empty\n");
}

TEST_F(ConfigFile, SyntaxErrorsGiveLineAndColumn) {
  std::string out = error("listen = \"127.0.0.1:1\nmax-sessions = 3\n");
  EXPECT_EQ(out.rfind("pi-server: " + path() + ":1:", 0), 0u) << out;
  out = error("max-sessions = 3\nmax-sessions = 4\n");
  EXPECT_EQ(out.rfind("pi-server: " + path() + ":2:", 0), 0u) << out;
}

TEST_F(ConfigFile, FlagErrorsNameTheFlag) {
  auto r = parse_arguments({"--log-level", "loud"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.failure().output, "pi-server: --log-level: want trace|debug|info|warn|error, not 'loud'\n");
  r = parse_arguments({"--config", dir_.path() + "/missing.toml"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.failure().exit_code, 2);
  EXPECT_NE(r.failure().output.find("missing.toml"), std::string::npos) << r.failure().output;
}

TEST_F(ConfigFile, PrintConfigShowsEffectiveValuesAndMasksSecrets) {
  auto r = parse("max-sessions = 7\nagent-env = [\"ANTHROPIC_API_KEY=sk-secret\", \"PLAIN\"]\n",
                 {"--print-config", "--rate-limit", "3"});
  ASSERT_FALSE(r);
  ASSERT_EQ(r.failure().exit_code, 0) << r.failure().output;
  const std::string& text = r.failure().output;
  EXPECT_NE(text.find("\nmax-sessions = 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nrate-limit = 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nlisten = \"127.0.0.1:3141\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("agent-env = [\"ANTHROPIC_API_KEY=***\", \"PLAIN\"]"), std::string::npos) << text;
  EXPECT_EQ(text.find("sk-secret"), std::string::npos) << text;
  EXPECT_EQ(text.find("print-config ="), std::string::npos);
  // What it prints is itself a valid config file with the same values.
  std::ofstream(dir_.path() + "/printed.toml") << text;
  auto again = parse_arguments({"--config", dir_.path() + "/printed.toml"});
  ASSERT_TRUE(again) << again.failure().output;
  EXPECT_EQ(again->options.max_sessions, 7u);
  EXPECT_DOUBLE_EQ(again->options.rate_limit_per_second, 3);
}

}  // namespace
}  // namespace pi_server::config

namespace pi_server::config {
namespace {

std::string read_source(const std::string& relative) {
  std::ifstream in(std::string(PI_SERVER_SOURCE_DIR) + "/" + relative);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(PackagedConfig, IsTheExampleInTheDocsAndEveryKeyInItIsValid) {
  const std::string file = read_source("packaging/pi-server.toml");
  ASSERT_FALSE(file.empty());
  EXPECT_NE(read_source("docs/configuration.md").find("```toml\n" + file + "```"), std::string::npos)
      << "docs/configuration.md must show packaging/pi-server.toml verbatim";

  // Uncomment every "# key = value" line: the defaults it shows must all be accepted.
  std::istringstream lines(file);
  std::string line, uncommented;
  std::size_t keys = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# ", 0) == 0 && line.find(" = ") != std::string::npos &&
        line.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-", 2) == line.find(" = ")) {
      line = line.substr(2);
      ++keys;
    }
    uncommented += line + "\n";
  }
  testing::TempDir dir;
  std::ofstream(dir.path() + "/all.toml") << uncommented;
  auto r = parse_arguments({"--config", dir.path() + "/all.toml", "--print-config"});
  ASSERT_FALSE(r);
  ASSERT_EQ(r.failure().exit_code, 0) << r.failure().output;

  // Every configurable flag has its key in the file.
  auto all = parse_arguments({"--state-dir", dir.path()});
  ASSERT_TRUE(all);
  for (const Setting& s : all->settings)
    EXPECT_NE(file.find(s.key + " = "), std::string::npos) << s.key << " is missing from packaging/pi-server.toml";
  EXPECT_EQ(keys + 1, all->settings.size()) << "every key but agent-command is commented out";

  // The commented-out values are the defaults (and read back exactly: a double printed with
  // 6 digits would not).
  const std::vector<std::string> same = {"--state-dir", dir.path(), "--log-format", "json"};
  auto from_file = parse_arguments([&] {
    auto a = same;
    a.insert(a.end(), {"--config", dir.path() + "/all.toml"});
    return a;
  }());
  auto defaults = parse_arguments([&] {
    auto a = same;
    a.insert(a.end(), {"--agent-command", "/opt/pi-server/agent/pi"});
    return a;
  }());
  ASSERT_TRUE(from_file) << from_file.failure().output;
  ASSERT_TRUE(defaults);
  ASSERT_EQ(from_file->settings.size(), defaults->settings.size());
  for (std::size_t i = 0; i < defaults->settings.size(); ++i)
    EXPECT_EQ(from_file->settings[i].value, defaults->settings[i].value) << defaults->settings[i].key;
}

}  // namespace
}  // namespace pi_server::config
