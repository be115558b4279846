#include "ws_client.hpp"

#include "client/ws_connection.hpp"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

namespace pi_server::testing {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;

namespace {
void set_timeout(tcp::socket& s, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = t.count() / 1000;
  tv.tv_usec = (t.count() % 1000) * 1000;
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}
}  // namespace

HttpResult http_get(std::uint16_t port, const std::string& target) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  set_timeout(socket, std::chrono::seconds(10));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  HttpResult out;
  out.status = res.result_int();
  out.body = res.body();
  out.content_type = std::string(res[http::field::content_type]);
  return out;
}

// The WebSocket half is pi-server-client's own code (src/client/ws_connection.*).
struct WsClient::Impl {
  asio::io_context io;
  client::WsConnection conn{io};
  bool reading = false;
  bool done = false;
  std::optional<Result<std::string>> result;
};

WsClient::WsClient(std::uint16_t port, std::vector<std::pair<std::string, std::string>> headers)
    : impl_(std::make_unique<Impl>()) {
  client::Endpoint endpoint{false, "127.0.0.1", std::to_string(port), "/"};
  client::ConnectOptions options;
  options.headers = std::move(headers);
  auto connected = impl_->conn.connect(endpoint, options);
  if (!connected) throw std::runtime_error(connected.failure().message);
}

WsClient::~WsClient() {
  impl_->conn.abort();
  impl_->io.restart();
  impl_->io.run();  // let a pending read finish with operation_aborted
}

void WsClient::send(const nlohmann::json& command) { send_text(command.dump()); }

// Writes are asynchronous too: one read and one write may be in flight, and a read may be
// pending from an earlier timed-out next().
void WsClient::send_text(const std::string& text) { write(text, true); }
void WsClient::send_binary(const std::string& bytes) { write(bytes, false); }

void WsClient::set_auto_fragment(bool on) { impl_->conn.set_auto_fragment(on); }

void WsClient::write(const std::string& data, bool text) {
  auto& impl = *impl_;
  bool written = false;
  Status result;
  impl.conn.send(data, text, [&](Status s) {
    result = std::move(s);
    written = true;
  });
  impl.io.restart();
  while (!written && impl.io.run_one_for(std::chrono::seconds(10)) > 0) {
  }
  if (!written || !result) throw std::runtime_error(written ? result.message() : "websocket write timed out");
}

std::optional<std::string> WsClient::next_raw(std::chrono::milliseconds timeout) {
  // Run the private io_context for at most `timeout`. A read that times out stays pending
  // and is picked up by the next call, so a quiet period never breaks the stream.
  auto& impl = *impl_;
  if (!impl.reading) {
    impl.reading = true;
    impl.done = false;
    impl.conn.async_read([&impl](Result<std::string> r) {
      impl.result = std::move(r);
      impl.done = true;
    });
  }
  impl.io.restart();
  impl.io.run_for(timeout);
  if (!impl.done) return std::nullopt;
  impl.reading = false;
  if (!*impl.result) {
    if (std::getenv("PI_SERVER_TEST_ECHO_LOGS"))
      std::fprintf(stderr, "[client] read: %s\n", impl.result->error().c_str());
    close_code_ = impl.conn.close_code();
    return std::nullopt;
  }
  std::string text = std::move(impl.result->value());
  raw_history_.push_back(text);
  return text;
}

std::optional<nlohmann::json> WsClient::next(std::chrono::milliseconds timeout) {
  auto raw = next_raw(timeout);
  if (!raw) return std::nullopt;
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  history_.push_back(j);
  return j;
}

std::optional<nlohmann::json> WsClient::wait_for(
    const std::function<bool(const nlohmann::json&)>& match, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto j = next(left);
    if (!j) return std::nullopt;
    if (match(*j)) return j;
  }
}

nlohmann::json WsClient::request(nlohmann::json command, std::chrono::milliseconds timeout) {
  std::string id = command.at("id");
  send(command);
  auto r = wait_for(
      [&](const nlohmann::json& j) {
        return j.value("type", "") == "response" && j.contains("id") && j["id"] == id;
      },
      timeout);
  if (!r) throw std::runtime_error("no response to " + id);
  return *r;
}

void WsClient::close() {
  bool closed = false;
  impl_->conn.async_close([&] { closed = true; });
  impl_->io.restart();
  while (!closed && impl_->io.run_one_for(std::chrono::seconds(5)) > 0) {
  }
}

}  // namespace pi_server::testing
