#pragma once
// pi-server-client's commands (DESIGN §11 "Client CLI", docs/clients.md). Each runs on a
// connected WsConnection and returns the process exit code.
#include <boost/asio/io_context.hpp>
#include <string>

#include "client/ws_connection.hpp"

namespace pi_server::client {

// Exit codes scripts can rely on (docs/clients.md lists them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitConnection = 1;     // cannot connect, or the connection ended early
inline constexpr int kExitUsage = 2;          // bad flags, URL or token file
inline constexpr int kExitCommandFailed = 3;  // the server answered an error, or the run failed
inline constexpr int kExitRefused = 4;        // the upgrade was refused (HTTP 401/403: credentials, origin)

// JSON lines on stdin, each frame received as one line on stdout; ends when stdin has ended
// and every command sent with an id has its response.
int run_send(boost::asio::io_context& io, WsConnection& conn);

struct ChatOptions {
  std::string session;  // attach to (or create) this session; empty: a new one
  bool force_new = false;
  std::string message;
};
// Creates or attaches the session, prompts, streams the answer until agent_settled.
int run_chat(boost::asio::io_context& io, WsConnection& conn, const ChatOptions& options);

// A table of running and stored sessions.
int run_sessions(boost::asio::io_context& io, WsConnection& conn);

}  // namespace pi_server::client
