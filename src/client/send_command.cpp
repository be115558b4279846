// `send`: the pipe for wrappers. stdin is read on a thread of its own (it may be a file,
// which epoll cannot watch); each line is handed to the loop, which owns the connection.
#include <boost/asio/post.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "client/cli.hpp"

namespace pi_server::client {

int run_send(boost::asio::io_context& io, WsConnection& conn) {
  std::set<std::string> waiting;  // ids sent and not yet answered
  bool stdin_ended = false;
  int exit_code = -1;

  auto finish = [&](int code) {
    if (exit_code >= 0) return;
    exit_code = code;
    if (code == kExitOk) conn.async_close([&io] { io.stop(); });
    else io.stop();
  };
  auto check_done = [&] {
    if (stdin_ended && waiting.empty()) finish(kExitOk);
  };

  std::function<void()> read_next = [&] {
    conn.async_read([&](Result<std::string> frame) {
      if (!frame) {
        if (exit_code >= 0) return;
        std::cerr << "pi-server-client: connection " << (frame.error() == "closed" ? "closed by the server" : "failed: " + frame.error());
        if (!waiting.empty()) std::cerr << " with " << waiting.size() << " command(s) unanswered";
        std::cerr << "\n";
        return finish(kExitConnection);
      }
      std::cout << *frame << '\n' << std::flush;
      auto j = nlohmann::json::parse(*frame, nullptr, false);
      if (j.is_object() && j.value("type", "") == "response" && j.contains("id") && j["id"].is_string())
        waiting.erase(j["id"].get<std::string>());
      check_done();
      if (exit_code < 0) read_next();
    });
  };
  read_next();

  std::thread reader([&io, &conn, &waiting, &stdin_ended, &check_done] {
    std::string line;
    while (std::getline(std::cin, line)) {
      boost::asio::post(io, [&conn, &waiting, line] {
        if (line.find_first_not_of(" \t\r") == std::string::npos) return;
        auto j = nlohmann::json::parse(line, nullptr, false);
        // Only commands with an id can be matched to their response.
        if (j.is_object() && j.contains("id") && j["id"].is_string()) waiting.insert(j["id"].get<std::string>());
        conn.send(line);
      });
    }
    boost::asio::post(io, [&] {
      stdin_ended = true;
      check_done();
    });
  });
  io.run();
  std::cout << std::flush;
  // The reader may still be blocked on stdin (the connection failed first): leave without
  // waiting for it.
  if (exit_code != kExitOk || !stdin_ended) std::_Exit(exit_code < 0 ? kExitConnection : exit_code);
  reader.join();
  return exit_code;
}

}  // namespace pi_server::client
