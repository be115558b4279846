#pragma once
// A small synchronous WebSocket/HTTP client for integration tests (Beast, compiled once
// into the test support library). Reads time out through SO_RCVTIMEO.
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pi_server::testing {

// How a client connects and what its request carries (WebSocket upgrade or plain HTTP).
struct ClientOptions {
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  std::string host = "127.0.0.1";  // the Host header (the connection always goes to 127.0.0.1)
  std::string bearer_token;        // non-empty: "Authorization: Bearer <token>"
  std::string subprotocols;        // non-empty: the Sec-WebSocket-Protocol offer
  bool tls = false;                // wss:// / https:// (the server certificate is not verified)
};

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::string content_type;
  std::string header(const std::string& name) const;
  std::vector<std::pair<std::string, std::string>> headers;
};
HttpResult http_get(std::uint16_t port, const std::string& target, const ClientOptions& options = {});

// A WebSocket upgrade that may be refused: the HTTP answer (101 when upgraded), then the
// connection is dropped. Throws only when no HTTP answer came (connection or TLS failure).
HttpResult try_upgrade(std::uint16_t port, const ClientOptions& options);

class WsClient {
 public:
  // Connects and completes the handshake. Throws on failure (the message names the HTTP
  // status when the server answered the upgrade with one).
  explicit WsClient(std::uint16_t port, const ClientOptions& options = {});
  ~WsClient();

  // The subprotocol the server chose (Sec-WebSocket-Protocol of its 101), or empty.
  const std::string& accepted_subprotocol() const { return accepted_subprotocol_; }

  void send(const nlohmann::json& command);
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  // Beast splits a message into 4 KiB frames by default; false sends each message as one
  // frame, as browsers do (a frame over the daemon's limit is refused at its header).
  void set_auto_fragment(bool on);

  // The next frame's raw text, or nullopt on timeout or close.
  std::optional<std::string> next_raw(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  std::optional<nlohmann::json> next(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Reads frames until one matches; every frame read is also kept in history().
  std::optional<nlohmann::json> wait_for(const std::function<bool(const nlohmann::json&)>& match,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Like wait_for, but first looks at the frames already read.
  std::optional<nlohmann::json> seen_or_wait(const std::function<bool(const nlohmann::json&)>& match,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    for (const auto& j : history_)
      if (match(j)) return j;
    return wait_for(match, timeout);
  }
  // Sends a command with this id and waits for the response carrying it.
  nlohmann::json request(nlohmann::json command,
                         std::chrono::milliseconds timeout = std::chrono::seconds(15));
  const std::vector<nlohmann::json>& history() const { return history_; }
  std::vector<std::string>& raw_history() { return raw_history_; }

  // After a read returned nullopt because the server closed: its close code.
  std::optional<int> close_code() const { return close_code_; }
  void close();

 private:
  friend HttpResult try_upgrade(std::uint16_t port, const ClientOptions& options);
  void write(const std::string& data, bool text);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<nlohmann::json> history_;
  std::vector<std::string> raw_history_;
  std::optional<int> close_code_;
  std::string accepted_subprotocol_;
};

}  // namespace pi_server::testing
