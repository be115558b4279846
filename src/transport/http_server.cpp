// The TCP listener: plain HTTP routes and WebSocket upgrades on one port.
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "observability/log.hpp"
#include "transport/awaitable_token.hpp"
#include "transport/transports.hpp"
#include "transport/websocket_connection.hpp"

namespace pi_server::transport {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;

namespace {

asio::awaitable<void> serve_http(tcp::socket socket, ConnectionHandler* ws_handler,
                                 HttpHandler& http_handler, ConnectionLimits limits) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    // The demo model's listener receives whole conversations; the public port does not.
    parser.body_limit(ws_handler ? 64 * 1024 : 64u << 20);
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
    if (ec) co_return;  // eof, timeout or a malformed request: just close
    auto request = parser.release();
    if (websocket::is_upgrade(request) && ws_handler) {
      auto origin = request[http::field::origin];
      bool allowed = origin.empty() ||
                     std::find(limits.allowed_origins.begin(), limits.allowed_origins.end(),
                               std::string_view(origin)) != limits.allowed_origins.end();
      if (!allowed) {
        log::warn("origin_refused", {{"origin", std::string(origin.substr(0, 200))}});
        http::response<http::string_body> refused{http::status::forbidden, request.version()};
        refused.set(http::field::content_type, "application/json");
        refused.body() = R"({"error":"origin not allowed"})";
        refused.keep_alive(false);
        refused.prepare_payload();
        co_await http::async_write(stream, refused, kTuple);
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
      {
        stream.expires_never();
        auto conn = std::make_shared<WebSocketConnection>(std::move(stream), *ws_handler, limits);
        co_await conn->run(std::move(request));
        co_return;
      }
    }
    HttpAnswer answer = http_handler.handle_http(request.method_string(), request.target(),
                                                 request.body());
    http::response<http::string_body> response{static_cast<http::status>(answer.status),
                                               request.version()};
    response.set(http::field::server, "pi-server/" PI_SERVER_VERSION);
    response.set(http::field::content_type, answer.content_type);
    response.keep_alive(request.keep_alive());
    response.body() = std::move(answer.body);
    response.prepare_payload();
    if (request.method() == http::verb::head) response.body().clear();
    auto [wec, wn] = co_await http::async_write(stream, response, kTuple);
    if (wec || !response.keep_alive()) {
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

class TcpListener : public Listener, public std::enable_shared_from_this<TcpListener> {
 public:
  TcpListener(asio::io_context& io, ConnectionHandler* ws_handler, HttpHandler& http_handler,
              const ConnectionLimits& limits)
      : acceptor_(io), ws_handler_(ws_handler), http_handler_(http_handler), limits_(limits) {}

  Status bind(const std::string& host, std::uint16_t port) {
    beast::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return Status::error("invalid listen address '" + host + "': " + ec.message());
    tcp::endpoint endpoint(address, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Status::error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                           ec.message());
    return Status::ok();
  }

  void start() {
    asio::co_spawn(acceptor_.get_executor(), accept_loop(shared_from_this()), log_coroutine_failure);
  }

  std::string address() const override {
    auto ep = acceptor_.local_endpoint();
    auto host = ep.address().to_string();
    if (ep.address().is_v6()) host = "[" + host + "]";
    return host + ":" + std::to_string(ep.port());
  }
  std::uint16_t port() const override { return acceptor_.local_endpoint().port(); }
  void stop() override {
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  asio::awaitable<void> accept_loop(std::shared_ptr<TcpListener> self) {
    asio::steady_timer backoff(acceptor_.get_executor());
    while (acceptor_.is_open()) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
      if (ec) {
        // EMFILE and friends: wait a little instead of spinning.
        log::warn("accept_failed", {{"error", ec.message()}});
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(kTuple);
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      asio::co_spawn(acceptor_.get_executor(),
                     serve_http(std::move(socket), ws_handler_, http_handler_, limits_),
                     log_coroutine_failure);
    }
  }

  tcp::acceptor acceptor_;
  ConnectionHandler* ws_handler_;
  HttpHandler& http_handler_;
  ConnectionLimits limits_;
};

}  // namespace

Result<std::shared_ptr<Listener>> start_listener(
    asio::io_context& io, const std::string& host, std::uint16_t port,
    ConnectionHandler* ws_handler, HttpHandler& http_handler, const ConnectionLimits& limits) {
  auto listener = std::make_shared<TcpListener>(io, ws_handler, http_handler, limits);
  if (auto bound = listener->bind(host, port); !bound) return bound;
  listener->start();
  return std::shared_ptr<Listener>(listener);
}

}  // namespace pi_server::transport
