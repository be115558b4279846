// `sessions`: list_sessions and list_stored_sessions side by side in one table.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "client/cli.hpp"

namespace pi_server::client {
namespace {

// Reads frames until the response with this id; nullopt if the connection ends.
std::optional<nlohmann::json> request(boost::asio::io_context& io, WsConnection& conn, nlohmann::json command) {
  const std::string id = command["id"];
  conn.send(command.dump());
  std::optional<nlohmann::json> answer;
  bool ended = false;
  std::function<void()> read_next = [&] {
    conn.async_read([&](Result<std::string> frame) {
      if (!frame) {
        ended = true;
        return;
      }
      auto j = nlohmann::json::parse(*frame, nullptr, false);
      if (j.is_object() && j.value("type", "") == "response" && j.value("id", "") == id) {
        answer = std::move(j);
        return;
      }
      read_next();
    });
  };
  read_next();
  io.restart();
  while (!answer && !ended && io.run_one() > 0) {
  }
  return answer;
}

std::string text(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

}  // namespace

int run_sessions(boost::asio::io_context& io, WsConnection& conn) {
  auto running = request(io, conn, {{"type", "list_sessions"}, {"id", "sessions"}});
  if (!running) {
    std::cerr << "pi-server-client: the connection ended before list_sessions was answered\n";
    return kExitConnection;
  }
  if (!running->value("success", false)) {
    std::cerr << "pi-server-client: list_sessions failed: " << running->value("error", "") << "\n";
    return kExitCommandFailed;
  }
  // Stored sessions exist once the daemon persists them; an older daemon does not know the
  // command, and then there are none to show.
  auto stored = request(io, conn, {{"type", "list_stored_sessions"}, {"id", "stored"}});

  std::printf("%-28s %-11s %-28s %-5s %s\n", "SESSION", "STATE", "MODEL", "SUBS", "CWD");
  std::set<std::string> shown;
  for (const auto& s : (*running)["data"].value("sessions", nlohmann::json::array())) {
    shown.insert(text(s, "sessionId"));
    std::printf("%-28s %-11s %-28s %-5s %s\n", text(s, "sessionId").c_str(), text(s, "state").c_str(),
                text(s, "model").c_str(), text(s, "subscriberCount").c_str(), text(s, "cwd").c_str());
  }
  if (stored && stored->value("success", false))
    for (const auto& s : (*stored)["data"].value("sessions", nlohmann::json::array()))
      if (!shown.count(text(s, "sessionId")))
        std::printf("%-28s %-11s %-28s %-5s %s\n", text(s, "sessionId").c_str(), "stored",
                    text(s, "model").c_str(), "-", text(s, "cwd").c_str());
  std::fflush(stdout);
  bool closed = false;
  conn.async_close([&] { closed = true; });
  io.restart();
  while (!closed && io.run_one() > 0) {
  }
  return kExitOk;
}

}  // namespace pi_server::client
