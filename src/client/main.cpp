// pi-server-client: flags, credentials and the connection; the commands are in
// send_command.cpp, chat_command.cpp and sessions_command.cpp.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "client/cli.hpp"
#include "client/ws_connection.hpp"

using namespace pi_server::client;

namespace {

int usage(const std::string& why) {
  std::cerr << "pi-server-client: " << why << "\n";
  return kExitUsage;
}

std::string trim(std::string s) {
  auto end = s.find_last_not_of(" \t\r\n");
  s.erase(end == std::string::npos ? 0 : end + 1);
  auto begin = s.find_first_not_of(" \t\r\n");
  return begin == std::string::npos ? "" : s.substr(begin);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pi-server-client: talk to a pi-server daemon over WebSocket", "pi-server-client"};
  app.set_version_flag("--version", std::string("pi-server-client ") + PI_SERVER_VERSION);
  app.require_subcommand(1);
  std::string url = "ws://127.0.0.1:3141";
  std::string token, token_file, ca_file;
  bool insecure = false;
  app.add_option("--url", url, "ws://HOST:PORT or wss://HOST:PORT of the daemon")->capture_default_str();
  app.add_option("--token", token, "Bearer token (default: $PI_SERVER_TOKEN)");
  app.add_option("--token-file", token_file, "Read the bearer token from this file (first line)");
  app.add_option("--ca-file", ca_file, "wss: also trust the CA certificates in this PEM file");
  app.add_flag("--insecure", insecure, "wss: do not verify the server's certificate");

  auto* send = app.add_subcommand("send", "JSON lines on stdin -> frames; every frame received -> one line on stdout");
  ChatOptions chat_options;
  std::vector<std::string> words;
  auto* chat = app.add_subcommand("chat", "Prompt a session and stream the answer");
  chat->add_option("--session", chat_options.session, "Attach to this session (created if it does not exist)");
  chat->add_flag("--new", chat_options.force_new, "Create the session (fails if --session names a running one)");
  chat->add_option("message", words, "The prompt")->required();
  auto* sessions = app.add_subcommand("sessions", "A table of running and stored sessions");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  for (const auto& w : words) chat_options.message += (chat_options.message.empty() ? "" : " ") + w;

  auto endpoint = parse_url(url);
  if (!endpoint) return usage("--url: " + endpoint.error());
  if (!token.empty() && !token_file.empty()) return usage("--token and --token-file: give one");
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) return usage("--token-file: cannot read " + token_file);
    std::getline(in, token);
    token = trim(token);
    if (token.empty()) return usage("--token-file: " + token_file + " is empty");
  } else if (token.empty()) {
    if (const char* env = std::getenv("PI_SERVER_TOKEN")) token = trim(env);
  }

  ConnectOptions options;
  if (!token.empty()) options.headers.emplace_back("Authorization", "Bearer " + token);
  options.ca_file = ca_file;
  options.insecure = insecure;

  boost::asio::io_context io;
  WsConnection conn(io);
  auto connected = conn.connect(*endpoint, options);
  if (!connected) {
    std::cerr << "pi-server-client: " << connected.failure().message << "\n";
    unsigned status = connected.failure().http_status;
    return status == 401 || status == 403 ? kExitRefused : kExitConnection;
  }
  if (*send) return run_send(io, conn);
  if (*chat) return run_chat(io, conn, chat_options);
  if (*sessions) return run_sessions(io, conn);
  return kExitUsage;
}
