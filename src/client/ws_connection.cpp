// Beast lives here (and in src/transport/): the client half, plain and TLS.
#include "client/ws_connection.hpp"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <variant>

namespace pi_server::client {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

Result<Endpoint> parse_url(std::string_view url) {
  Endpoint e;
  std::string_view rest;
  if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
  } else if (url.rfind("wss://", 0) == 0) {
    e.tls = true;
    rest = url.substr(6);
  } else {
    return Status::error("want a ws:// or wss:// URL, not '" + std::string(url) + "'");
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) e.target = std::string(rest.substr(slash));
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return Status::error("bad IPv6 host in '" + std::string(url) + "'");
    e.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') e.port = std::string(authority.substr(close + 2));
  } else {
    auto colon = authority.rfind(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) e.port = std::string(authority.substr(colon + 1));
  }
  if (e.host.empty()) return Status::error("no host in '" + std::string(url) + "'");
  if (e.port.empty()) e.port = e.tls ? "443" : "80";
  if (e.port.find_first_not_of("0123456789") != std::string::npos)
    return Status::error("bad port in '" + std::string(url) + "'");
  return e;
}

using PlainStream = websocket::stream<beast::tcp_stream>;
using TlsStream = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

struct WsConnection::Impl {
  explicit Impl(asio::io_context& io) : io(io) {}
  asio::io_context& io;
  ssl::context tls_context{ssl::context::tls_client};
  std::variant<std::monostate, std::unique_ptr<PlainStream>, std::unique_ptr<TlsStream>> ws;
  beast::flat_buffer buffer;
  struct Outgoing {
    std::string message;
    bool text;
    std::function<void(Status)> done;
  };
  std::deque<Outgoing> queue;
  std::optional<int> close_code;

  template <typename F>
  void visit(F&& f) {
    if (auto* p = std::get_if<std::unique_ptr<PlainStream>>(&ws)) f(**p);
    else if (auto* t = std::get_if<std::unique_ptr<TlsStream>>(&ws)) f(**t);
  }

  void write_next() {
    if (queue.empty()) return;
    visit([this](auto& stream) {
      stream.text(queue.front().text);
      stream.async_write(asio::buffer(queue.front().message), [this](beast::error_code ec, std::size_t) {
        auto done = std::move(queue.front().done);
        queue.pop_front();
        if (done) done(ec ? Status::error("websocket write failed: " + ec.message()) : Status::ok());
        if (ec) {
          for (auto& o : queue)
            if (o.done) o.done(Status::error("websocket write failed: " + ec.message()));
          queue.clear();
          return;
        }
        write_next();
      });
    });
  }
};

WsConnection::WsConnection(asio::io_context& io) : impl_(std::make_unique<Impl>(io)) {}
WsConnection::~WsConnection() = default;

namespace {

template <typename Stream>
Result<bool, ConnectError> handshake(Stream& ws, const Endpoint& endpoint, const ConnectOptions& options) {
  ws.set_option(websocket::stream_base::decorator([headers = options.headers](websocket::request_type& req) {
    req.set(http::field::user_agent, "pi-server-client");
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  ws.read_message_max(options.max_message_bytes);
  websocket::response_type response;
  beast::error_code ec;
  std::string host = endpoint.host.find(':') != std::string::npos ? "[" + endpoint.host + "]" : endpoint.host;
  ws.handshake(response, host + ":" + endpoint.port, endpoint.target, ec);
  if (ec) {
    ConnectError e{"WebSocket handshake with " + host + ":" + endpoint.port + " failed: " + ec.message(), 0};
    if (ec == websocket::error::upgrade_declined) {
      e.http_status = response.result_int();
      e.message = "the server refused the WebSocket upgrade: HTTP " + std::to_string(e.http_status) + " " +
                  std::string(response.reason());
    }
    return e;
  }
  return true;
}

}  // namespace

Result<bool, ConnectError> WsConnection::connect(const Endpoint& endpoint, const ConnectOptions& options) {
  auto& impl = *impl_;
  tcp::resolver resolver(impl.io);
  beast::error_code ec;
  auto results = resolver.resolve(endpoint.host, endpoint.port, ec);
  if (ec) return ConnectError{"cannot resolve " + endpoint.host + ": " + ec.message(), 0};
  if (!endpoint.tls) {
    auto ws = std::make_unique<PlainStream>(impl.io);
    beast::get_lowest_layer(*ws).socket().open(results.begin()->endpoint().protocol(), ec);
    asio::connect(beast::get_lowest_layer(*ws).socket(), results, ec);
    if (ec) return ConnectError{"cannot connect to " + endpoint.host + ":" + endpoint.port + ": " + ec.message(), 0};
    if (auto r = handshake(*ws, endpoint, options); !r) return r;
    impl.ws = std::move(ws);
    return true;
  }
  auto& ctx = impl.tls_context;
  ctx.set_default_verify_paths(ec);
  if (!options.ca_file.empty()) {
    ctx.load_verify_file(options.ca_file, ec);
    if (ec) return ConnectError{"cannot read --ca-file " + options.ca_file + ": " + ec.message(), 0};
  }
  ctx.set_verify_mode(options.insecure ? ssl::verify_none : ssl::verify_peer);
  auto ws = std::make_unique<TlsStream>(impl.io, ctx);
  auto& tls = ws->next_layer();
  if (!options.insecure) tls.set_verify_callback(ssl::host_name_verification(endpoint.host));
  // SNI, so a server with several names picks the right certificate.
  SSL_set_tlsext_host_name(tls.native_handle(), endpoint.host.c_str());
  asio::connect(beast::get_lowest_layer(*ws).socket(), results, ec);
  if (ec) return ConnectError{"cannot connect to " + endpoint.host + ":" + endpoint.port + ": " + ec.message(), 0};
  tls.handshake(ssl::stream_base::client, ec);
  if (ec) return ConnectError{"TLS handshake with " + endpoint.host + ":" + endpoint.port + " failed: " + ec.message(), 0};
  if (auto r = handshake(*ws, endpoint, options); !r) return r;
  impl.ws = std::move(ws);
  return true;
}

void WsConnection::async_read(std::function<void(Result<std::string>)> done) {
  auto& impl = *impl_;
  impl.buffer.consume(impl.buffer.size());
  impl.visit([&impl, done = std::move(done)](auto& stream) mutable {
    stream.async_read(impl.buffer, [&impl, &stream, done = std::move(done)](beast::error_code ec, std::size_t) {
      if (ec) {
        // The close frame's code is recorded even when the teardown after it fails.
        if (ec == websocket::error::closed || stream.reason().code != 0) impl.close_code = stream.reason().code;
        return done(Status::error(ec == websocket::error::closed ? "closed" : ec.message()));
      }
      done(beast::buffers_to_string(impl.buffer.data()));
    });
  });
}

void WsConnection::send(std::string message, bool text, std::function<void(Status)> done) {
  auto& impl = *impl_;
  impl.queue.push_back({std::move(message), text, std::move(done)});
  if (impl.queue.size() == 1) impl.write_next();
}

void WsConnection::async_close(std::function<void()> done) {
  impl_->visit([done = std::move(done)](auto& stream) mutable {
    stream.async_close(websocket::close_code::normal, [done = std::move(done)](beast::error_code) {
      if (done) done();
    });
  });
}

void WsConnection::abort() {
  impl_->visit([](auto& stream) {
    beast::error_code ignored;
    beast::get_lowest_layer(stream).socket().close(ignored);
  });
}

void WsConnection::set_auto_fragment(bool on) {
  impl_->visit([on](auto& stream) { stream.auto_fragment(on); });
}

std::optional<int> WsConnection::close_code() const { return impl_->close_code; }

}  // namespace pi_server::client
