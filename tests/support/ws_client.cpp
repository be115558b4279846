#include "ws_client.hpp"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
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

struct WsClient::Impl {
  asio::io_context io;
  websocket::stream<tcp::socket> ws{io};
  beast::flat_buffer buffer;
  bool reading = false;
  bool done = false;
  beast::error_code result;
};

WsClient::WsClient(std::uint16_t port, std::vector<std::pair<std::string, std::string>> headers)
    : impl_(std::make_unique<Impl>()) {
  impl_->ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  impl_->ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  impl_->ws.read_message_max(1u << 30);
  impl_->ws.handshake("127.0.0.1", "/");
}

WsClient::~WsClient() {
  beast::error_code ec;
  impl_->ws.next_layer().close(ec);
  impl_->io.restart();
  impl_->io.run();  // let a pending read finish with operation_aborted
}

void WsClient::send(const nlohmann::json& command) { send_text(command.dump()); }

// Writes are asynchronous too: Beast allows one read and one write in flight, and a read
// may be pending from an earlier timed-out next().
void WsClient::send_text(const std::string& text) { write(text, true); }
void WsClient::send_binary(const std::string& bytes) { write(bytes, false); }

void WsClient::set_auto_fragment(bool on) { impl_->ws.auto_fragment(on); }

void WsClient::write(const std::string& data, bool text) {
  auto& impl = *impl_;
  impl.ws.text(text);
  bool written = false;
  beast::error_code result;
  impl.ws.async_write(asio::buffer(data), [&](beast::error_code ec, std::size_t) {
    result = ec;
    written = true;
  });
  impl.io.restart();
  while (!written && impl.io.run_one_for(std::chrono::seconds(10)) > 0) {
  }
  if (!written || result) throw std::runtime_error("websocket write failed: " + result.message());
}

std::optional<std::string> WsClient::next_raw(std::chrono::milliseconds timeout) {
  // Asio's synchronous reads ignore SO_RCVTIMEO, so read asynchronously and run the private
  // io_context for at most `timeout`. A read that times out stays pending and is picked up
  // by the next call, so a quiet period never breaks the stream.
  auto& impl = *impl_;
  if (!impl.reading) {
    impl.reading = true;
    impl.done = false;
    impl.buffer.consume(impl.buffer.size());
    impl.ws.async_read(impl.buffer, [&impl](beast::error_code ec, std::size_t) {
      impl.result = ec;
      impl.done = true;
    });
  }
  impl.io.restart();
  impl.io.run_for(timeout);
  if (!impl.done) return std::nullopt;
  impl.reading = false;
  if (impl.result) {
    if (std::getenv("PI_SERVER_TEST_ECHO_LOGS"))
      std::fprintf(stderr, "[client] read: %s\n", impl.result.message().c_str());
    // The close frame's code is recorded even when Beast's teardown after it fails (the
    // server may already have shut the TCP connection down).
    if (impl.result == websocket::error::closed || impl.ws.reason().code != 0)
      close_code_ = impl.ws.reason().code;
    return std::nullopt;
  }
  std::string text = beast::buffers_to_string(impl.buffer.data());
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
  impl_->ws.async_close(websocket::close_code::normal, [&](beast::error_code) { closed = true; });
  impl_->io.restart();
  while (!closed && impl_->io.run_one_for(std::chrono::seconds(5)) > 0) {
  }
}

}  // namespace pi_server::testing
