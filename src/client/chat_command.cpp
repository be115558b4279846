// `chat`: one prompt, streamed. The loop reads frames and keeps a small state: which step
// (attach/create, prompt, streaming) and whether the terminal line is clean.
#include <unistd.h>

#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "client/cli.hpp"

namespace pi_server::client {
namespace {
using nlohmann::json;

class Chat {
 public:
  Chat(boost::asio::io_context& io, WsConnection& conn, const ChatOptions& options)
      : io_(io), conn_(conn), options_(options), spinner_(io),
        stdout_tty_(::isatty(STDOUT_FILENO)), stdin_tty_(::isatty(STDIN_FILENO)) {
    // Command ids are kept for replay (a repeated id with another payload is refused), so
    // each run uses its own.
    std::random_device random;
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "chat-%08x%08x-", random(), random());
    prefix_ = prefix;
  }

  int run() {
    read_next();
    if (stdout_tty_) spin();
    io_.run();
    return exit_code_;
  }

 private:
  void read_next() {
    conn_.async_read([this](Result<std::string> frame) {
      if (!frame) {
        if (done_) return;
        return fail(kExitConnection, frame.error() == "closed" ? "the server closed the connection"
                                                               : "connection failed: " + frame.error());
      }
      auto j = json::parse(*frame, nullptr, false);
      if (j.is_object()) on_frame(j);
      if (!done_) read_next();
    });
  }

  void on_frame(const json& j) {
    const std::string type = j.value("type", "");
    if (type == "server_ready") return start();
    if (type == "response") return on_response(j);
    if (type == "event" && j.value("sessionId", "") == session_) return on_event(j["event"]);
    if (type == "agent_exited" && j["data"].value("sessionId", "") == session_ &&
        !j["data"].value("restarting", false))
      return fail(kExitCommandFailed, "the agent exited");
    if (type == "server_shutdown") return fail(kExitConnection, "the server is shutting down");
  }

  void start() {
    if (!options_.session.empty() && !options_.force_new) {
      session_ = options_.session;
      send({{"type", "switch_session"}, {"id", prefix_ + "attach"}, {"sessionId", session_}});
    } else {
      create();
    }
  }

  void create() {
    json command = {{"type", "create_session"}, {"id", prefix_ + "create"}};
    if (!options_.session.empty()) command["sessionId"] = options_.session;
    send(command);
  }

  void on_response(const json& r) {
    const std::string id = r.value("id", "");
    const bool ok = r.value("success", false);
    if (id == prefix_ + "attach") {
      if (ok) return prompt();
      if (r.value("code", "") == "session_not_found") return create();
      return fail(kExitCommandFailed, "switch_session failed: " + r.value("error", ""));
    }
    if (id == prefix_ + "create") {
      if (!ok) return fail(kExitCommandFailed, "create_session failed: " + r.value("error", ""));
      session_ = r["data"].value("sessionId", session_);
      return prompt();
    }
    if (id == prefix_ + "prompt" && !ok) return fail(kExitCommandFailed, "prompt failed: " + r.value("error", ""));
  }

  void prompt() {
    if (!stdout_tty_) std::fprintf(stderr, "session %s\n", session_.c_str());
    send({{"type", "prompt"}, {"id", prefix_ + "prompt"}, {"sessionId", session_}, {"message", options_.message}});
  }

  void on_event(const json& e) {
    const std::string type = e.value("type", "");
    if (type == "message_update") {
      const json& update = e.value("assistantMessageEvent", json::object());
      if (update.value("type", "") == "text_delta") write(update.value("delta", ""));
    } else if (type == "tool_execution_start") {
      std::string args = e.value("args", json::object()).dump();
      if (args.size() > 120) args = args.substr(0, 117) + "...";
      line("[tool] " + e.value("toolName", "?") + " " + args);
    } else if (type == "tool_execution_end" && e.value("isError", false)) {
      line("[tool] " + e.value("toolName", "?") + " failed");
    } else if (type == "message_end") {
      const json& m = e.value("message", json::object());
      if (m.value("role", "") == "assistant" && m.value("stopReason", "") == "error")
        run_error_ = m.value("errorMessage", "the model request failed");
    } else if (type == "extension_ui_request") {
      answer_dialog(e);
    } else if (type == "agent_settled") {
      if (!at_line_start_) write("\n");
      if (!run_error_.empty()) return fail(kExitCommandFailed, run_error_);
      finish(kExitOk);
    }
  }

  // Dialogs that wait for an answer get one: from the terminal when stdin is one, else a
  // cancel (so the run goes on instead of waiting for --ui-timeout-ms).
  void answer_dialog(const json& e) {
    const std::string method = e.value("method", "");
    if (method != "select" && method != "confirm" && method != "input" && method != "editor") return;
    json answer = {{"type", "extension_ui_response"}, {"id", prefix_ + "ui-" + std::to_string(++dialogs_)},
                   {"sessionId", session_}, {"uiRequestId", e.value("id", "")}};
    if (!stdin_tty_) {
      line("[dialog] " + e.value("title", method) + " (cancelled: stdin is not a terminal)");
      answer["cancelled"] = true;
      return send(answer);
    }
    clear_spinner();
    if (!at_line_start_) write("\n");
    std::printf("[dialog] %s\n", e.value("title", method).c_str());
    std::string reply;
    if (method == "select") {
      auto options = e.value("options", json::array());
      for (std::size_t i = 0; i < options.size(); ++i)
        std::printf("  %zu) %s\n", i + 1, options[i].is_string() ? options[i].get<std::string>().c_str() : options[i].dump().c_str());
      std::printf("choose 1-%zu (empty cancels): ", options.size());
      std::fflush(stdout);
      std::getline(std::cin, reply);
      std::size_t pick = std::strtoul(reply.c_str(), nullptr, 10);
      if (pick >= 1 && pick <= options.size()) answer["value"] = options[pick - 1];
      else answer["cancelled"] = true;
    } else if (method == "confirm") {
      std::printf("%s [y/N] ", e.value("message", "").c_str());
      std::fflush(stdout);
      std::getline(std::cin, reply);
      answer["confirmed"] = !reply.empty() && (reply[0] == 'y' || reply[0] == 'Y');
    } else {
      std::printf("> ");
      std::fflush(stdout);
      if (std::getline(std::cin, reply)) answer["value"] = reply;
      else answer["cancelled"] = true;
    }
    at_line_start_ = true;
    send(answer);
  }

  void send(const json& command) { conn_.send(command.dump()); }

  void write(const std::string& text) {
    if (text.empty()) return;
    clear_spinner();
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    at_line_start_ = text.back() == '\n';
    last_output_ = std::chrono::steady_clock::now();
  }
  void line(const std::string& text) {
    if (!at_line_start_) write("\n");
    write(text + "\n");
  }

  // A spinner while nothing arrives, on a terminal only, and only on an empty line.
  void spin() {
    spinner_.expires_after(std::chrono::milliseconds(120));
    spinner_.async_wait([this](boost::system::error_code ec) {
      if (ec || done_) return;
      static const char* frames[] = {"|", "/", "-", "\\"};
      if (at_line_start_ && std::chrono::steady_clock::now() - last_output_ > std::chrono::milliseconds(300)) {
        std::fprintf(stdout, "\r%s waiting for pi", frames[spin_frame_++ % 4]);
        std::fflush(stdout);
        spinner_shown_ = true;
      }
      spin();
    });
  }
  void clear_spinner() {
    if (!spinner_shown_) return;
    std::fputs("\r\033[K", stdout);
    spinner_shown_ = false;
  }

  void fail(int code, const std::string& why) {
    clear_spinner();
    if (!at_line_start_) write("\n");
    std::fprintf(stderr, "pi-server-client: %s\n", why.c_str());
    finish(code);
  }
  void finish(int code) {
    if (done_) return;
    done_ = true;
    exit_code_ = code;
    clear_spinner();
    spinner_.cancel();
    if (code == kExitConnection) return io_.stop();
    conn_.async_close([this] { io_.stop(); });
  }

  boost::asio::io_context& io_;
  WsConnection& conn_;
  const ChatOptions& options_;
  boost::asio::steady_timer spinner_;
  const bool stdout_tty_;
  const bool stdin_tty_;
  std::string prefix_;
  std::string session_;
  std::string run_error_;
  int dialogs_ = 0;
  int exit_code_ = kExitConnection;
  bool done_ = false;
  bool at_line_start_ = true;
  bool spinner_shown_ = false;
  unsigned spin_frame_ = 0;
  std::chrono::steady_clock::time_point last_output_ = std::chrono::steady_clock::now();
};

}  // namespace

int run_chat(boost::asio::io_context& io, WsConnection& conn, const ChatOptions& options) {
  return Chat(io, conn, options).run();
}

}  // namespace pi_server::client
