#include "ws_client.hpp"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <stdexcept>

namespace pi_server::testing {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using asio::ip::tcp;

namespace {
void set_timeout(tcp::socket& s, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = t.count() / 1000;
  tv.tv_usec = (t.count() % 1000) * 1000;
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

using PlainWs = websocket::stream<tcp::socket>;
using TlsWs = websocket::stream<ssl::stream<tcp::socket>>;

// Tests talk to a daemon with a self-signed certificate: no verification.
ssl::context client_tls_context() {
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  return ctx;
}

template <class Request>
void decorate(Request& req, const ClientOptions& options) {
  req.set(http::field::host, options.host);
  if (!options.bearer_token.empty())
    req.set(http::field::authorization, "Bearer " + options.bearer_token);
  if (!options.subprotocols.empty())
    req.set(http::field::sec_websocket_protocol, options.subprotocols);
  for (const auto& [k, v] : options.headers) req.set(k, v);
}

HttpResult to_result(const http::response<http::string_body>& res) {
  HttpResult out;
  out.status = res.result_int();
  out.body = res.body();
  out.content_type = std::string(res[http::field::content_type]);
  for (const auto& field : res)
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  return out;
}

tcp::socket connect_loopback(asio::io_context& io, std::uint16_t port) {
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  set_timeout(socket, std::chrono::seconds(10));
  return socket;
}
}  // namespace

std::string HttpResult::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (beast::iequals(k, name)) return v;
  return "";
}

HttpResult http_get(std::uint16_t port, const std::string& target, const ClientOptions& options) {
  asio::io_context io;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  decorate(req, options);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (options.tls) {
    auto ctx = client_tls_context();
    ssl::stream<tcp::socket> stream(connect_loopback(io, port), ctx);
    stream.handshake(ssl::stream_base::client);
    http::write(stream, req);
    http::read(stream, buffer, res);
  } else {
    auto socket = connect_loopback(io, port);
    http::write(socket, req);
    http::read(socket, buffer, res);
  }
  return to_result(res);
}

struct WsClient::Impl {
  asio::io_context io;
  ssl::context tls_ctx = client_tls_context();
  std::optional<PlainWs> plain;
  std::optional<TlsWs> tls;
  beast::flat_buffer buffer;
  bool reading = false;
  bool done = false;
  beast::error_code result;

  // Runs f on whichever stream this client has.
  template <class F>
  decltype(auto) with(F&& f) {
    if (tls) return f(*tls);
    return f(*plain);
  }

  // Connects, then sends the upgrade; the server's answer goes to `res`.
  beast::error_code open(std::uint16_t port, const ClientOptions& options,
                         websocket::response_type& res) {
    if (options.tls) {
      tls.emplace(connect_loopback(io, port), tls_ctx);
      beast::error_code ec;
      tls->next_layer().handshake(ssl::stream_base::client, ec);
      if (ec) return ec;
    } else {
      plain.emplace(connect_loopback(io, port));
    }
    return with([&](auto& ws) {
      ws.set_option(websocket::stream_base::decorator(
          [options](websocket::request_type& req) { decorate(req, options); }));
      ws.read_message_max(1u << 30);
      beast::error_code ec;
      ws.handshake(res, options.host, "/", ec);
      return ec;
    });
  }
};

HttpResult try_upgrade(std::uint16_t port, const ClientOptions& options) {
  auto impl = std::make_unique<WsClient::Impl>();
  websocket::response_type res;
  auto ec = impl->open(port, options, res);
  if (res.result_int() == 0)
    throw std::runtime_error("no HTTP answer to the upgrade: " + ec.message());
  return to_result(res);
}

WsClient::WsClient(std::uint16_t port, const ClientOptions& options)
    : impl_(std::make_unique<Impl>()) {
  websocket::response_type res;
  auto ec = impl_->open(port, options, res);
  if (ec)
    throw std::runtime_error("websocket handshake failed: " + ec.message() + " (HTTP " +
                             std::to_string(res.result_int()) + ")");
  accepted_subprotocol_ = std::string(res[http::field::sec_websocket_protocol]);
}

WsClient::~WsClient() {
  beast::error_code ec;
  impl_->with([&](auto& ws) { beast::get_lowest_layer(ws).close(ec); });
  impl_->io.restart();
  impl_->io.run();  // let a pending read finish with operation_aborted
}

void WsClient::send(const nlohmann::json& command) { send_text(command.dump()); }

// Writes are asynchronous too: Beast allows one read and one write in flight, and a read
// may be pending from an earlier timed-out next().
void WsClient::send_text(const std::string& text) { write(text, true); }
void WsClient::send_binary(const std::string& bytes) { write(bytes, false); }

void WsClient::set_auto_fragment(bool on) {
  impl_->with([&](auto& ws) { ws.auto_fragment(on); });
}

void WsClient::write(const std::string& data, bool text) {
  auto& impl = *impl_;
  bool written = false;
  beast::error_code result;
  impl.with([&](auto& ws) {
    ws.text(text);
    ws.async_write(asio::buffer(data), [&](beast::error_code ec, std::size_t) {
      result = ec;
      written = true;
    });
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
    impl.with([&](auto& ws) {
      ws.async_read(impl.buffer, [&impl](beast::error_code ec, std::size_t) {
        impl.result = ec;
        impl.done = true;
      });
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
    auto code = impl.with([](auto& ws) { return ws.reason().code; });
    if (impl.result == websocket::error::closed || code != 0) close_code_ = code;
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
  impl_->with([&](auto& ws) {
    ws.async_close(websocket::close_code::normal, [&](beast::error_code) { closed = true; });
  });
  impl_->io.restart();
  while (!closed && impl_->io.run_one_for(std::chrono::seconds(5)) > 0) {
  }
}

}  // namespace pi_server::testing
