// The TCP listener: plain HTTP routes and WebSocket upgrades on one port; every accepted
// socket counted (see Listener in transports.hpp), descriptor exhaustion shed.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <type_traits>

#include "observability/log.hpp"
#include "transport/awaitable_token.hpp"
#include "transport/heartbeat.hpp"
#include "transport/transports.hpp"
#include "transport/websocket_connection.hpp"

namespace pi_server::transport {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using asio::ip::tcp;

namespace {

// Every socket a listener accepted and has not closed, oldest first. An entry says how to
// tell whether the socket may be closed to make room (it is not an admitted WebSocket) and
// how to close it.
class SocketTable {
 public:
  struct Entry {
    std::function<bool()> evictable;
    std::function<void()> close;  // closes the descriptor now
  };

  std::uint64_t add() {
    auto id = next_id_++;
    // Not evictable until its coroutine runs and says how to close it.
    entries_.emplace(id, Entry{[] { return false; }, [] {}});
    before_upgrade_.insert(id);
    return id;
  }
  void set(std::uint64_t id, Entry entry) {
    if (auto it = entries_.find(id); it != entries_.end()) it->second = std::move(entry);
  }
  // The socket now belongs to its WebSocket connection.
  void upgraded(std::uint64_t id) { before_upgrade_.erase(id); }
  void remove(std::uint64_t id) {
    entries_.erase(id);
    before_upgrade_.erase(id);
  }
  bool contains(std::uint64_t id) const { return entries_.count(id) != 0; }
  std::size_t size() const { return entries_.size(); }
  // Sockets not (yet) handed to a WebSocket: waiting for a request, in TLS or plain HTTP.
  std::size_t before_upgrade() const { return before_upgrade_.size(); }

  // Closes and forgets the oldest evictable socket that has not upgraded; false if none.
  bool evict_oldest_before_upgrade() {
    for (auto id : before_upgrade_) {
      auto it = entries_.find(id);
      if (it != entries_.end() && it->second.evictable()) return close_entry(it);
    }
    return false;
  }
  // Closes and forgets the oldest evictable socket (one before its upgrade first, then a
  // WebSocket in its handshake or closing); false if there is none.
  bool evict_oldest() {
    if (evict_oldest_before_upgrade()) return true;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.evictable()) return close_entry(it);
    return false;
  }

 private:
  bool close_entry(std::map<std::uint64_t, Entry>::iterator it) {
    auto close = std::move(it->second.close);
    before_upgrade_.erase(it->first);
    entries_.erase(it);
    close();
    return true;
  }

  std::map<std::uint64_t, Entry> entries_;  // ids grow: map order is age
  std::set<std::uint64_t> before_upgrade_;   // the same ids, oldest first
  std::uint64_t next_id_ = 0;
};

// Logs a warning about something that can happen thousands of times a second at most once
// a second, with how often it happened in between.
class RateLimitedWarning {
 public:
  explicit RateLimitedWarning(const char* msg) : msg_(msg) {}
  void note(const std::string& detail, std::uint64_t total) {
    ++pending_;
    auto now = std::chrono::steady_clock::now();
    if (logged_ && now - last_ < std::chrono::seconds(1)) return;
    log::warn(msg_, {{"count", pending_}, {"total", total}, {"detail", detail}});
    logged_ = true;
    last_ = now;
    pending_ = 0;
  }

 private:
  const char* msg_;
  bool logged_ = false;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t pending_ = 0;
};

// What serve_http needs of its listener; shared with every connection coroutine, so it
// outlives the listener object if connections do.
struct SocketAccounting {
  SocketTable table;
  ListenerStats stats;
  std::shared_ptr<HeartbeatMonitor> heartbeat;  // of this listener's WebSockets
};

// Everything one accepted socket needs from its listener.
struct ServeContext {
  ConnectionHandler* ws_handler;
  HttpHandler& http_handler;
  Authenticator* authenticator;
  ConnectionLimits limits;
  std::shared_ptr<SocketAccounting> accounting;
  std::uint64_t slot;
  bool over_cap;
};

// Until the upgrade, closing to make room closes this stream's socket.
template <class Stream>
void closable_until_upgrade(ServeContext& ctx, Stream& stream) {
  ctx.accounting->table.set(ctx.slot, {[] { return true; }, [&stream] {
                                         auto& lowest = beast::get_lowest_layer(stream);
                                         beast::error_code ignored;
                                         lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
                                         lowest.close();
                                       }});
}

// Gives the socket's slot back to the listener's table when the socket is done: at the end
// of serve_http for plain HTTP, or when an upgraded WebSocket's run() ends (it is moved along).
class SlotRelease {
 public:
  SlotRelease(std::shared_ptr<SocketAccounting> accounting, std::uint64_t slot)
      : accounting_(std::move(accounting)), slot_(slot) {}
  SlotRelease(SlotRelease&& other) noexcept
      : accounting_(std::move(other.accounting_)), slot_(other.slot_) {}
  SlotRelease(const SlotRelease&) = delete;
  SlotRelease& operator=(const SlotRelease&) = delete;
  SlotRelease& operator=(SlotRelease&&) = delete;
  ~SlotRelease() {
    if (!accounting_) return;  // moved along
    accounting_->table.remove(slot_);
    accounting_->stats.open_sockets = accounting_->table.size();
  }

 private:
  std::shared_ptr<SocketAccounting> accounting_;
  std::uint64_t slot_;
};

void shutdown_send(beast::tcp_stream& stream) {
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// HTTP requests on one connection (ws:// or wss://, http:// or https://) until it closes
// or upgrades to a WebSocket, which then owns the stream.
template <class Stream>
asio::awaitable<void> serve_requests(Stream& stream, ServeContext& ctx, SlotRelease& release) {
  auto& lowest = beast::get_lowest_layer(stream);
  auto* ws_handler = ctx.ws_handler;
  auto* authenticator = ctx.authenticator;
  const auto& limits = ctx.limits;
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    // The demo model's listener receives whole conversations; the public port does not.
    parser.body_limit(ws_handler ? 64 * 1024 : 64u << 20);
    lowest.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
    if (ec) co_return;  // eof, timeout or a malformed request: just close
    auto request = parser.release();
    bool upgrade = websocket::is_upgrade(request) && ws_handler;
    Principal principal;
    if (authenticator) {
      beast::error_code ep_ec;
      auto remote = lowest.socket().remote_endpoint(ep_ec);
      std::string remote_address = ep_ec ? "unknown" : remote.address().to_string();
      RequestFacts facts;
      facts.websocket_upgrade = upgrade;
      facts.target = request.target();
      facts.host = request[http::field::host];
      facts.has_origin = request.find(http::field::origin) != request.end();
      facts.origin = request[http::field::origin];
      facts.authorization = request[http::field::authorization];
      facts.websocket_protocols = request[http::field::sec_websocket_protocol];
      facts.remote_address = remote_address;
      auto admission = authenticator->admit(facts);
      if (!admission.admitted()) {
        http::response<http::string_body> refused{static_cast<http::status>(admission.status),
                                                  request.version()};
        refused.set(http::field::server, "pi-server/" PI_SERVER_VERSION);
        refused.set(http::field::content_type, "application/json");
        if (admission.status == 401) refused.set(http::field::www_authenticate, "Bearer");
        refused.body() = std::move(admission.body);
        refused.keep_alive(false);
        refused.prepare_payload();
        co_await http::async_write(stream, refused, kTuple);
        shutdown_send(lowest);
        co_return;
      }
      principal = std::move(admission.principal);
    }
    if (upgrade) {
      lowest.expires_never();
      auto executor = lowest.get_executor();
      // ws:// takes the bare socket (the HTTP stream's timers stay behind); wss:// the TLS
      // stream.
      auto conn = [&] {
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>)
          return std::make_shared<WebSocketConnection>(stream.release_socket(), *ws_handler, limits,
                                                       std::move(principal), ctx.accounting->heartbeat);
        else
          return std::make_shared<TlsWebSocketConnection>(std::move(stream), *ws_handler, limits,
                                                          std::move(principal), ctx.accounting->heartbeat);
      }();
      // From here on the socket is the connection's; it may be closed to make room
      // unless it is an admitted WebSocket (during its handshake, when the core refused
      // it, and while it closes, it may).
      ctx.accounting->table.set(ctx.slot, {[c = conn.get()] { return !c->admitted(); },
                                           [c = conn.get()] { c->evict(); }});
      ctx.accounting->table.upgraded(ctx.slot);
      // The connection runs as a coroutine of its own, which owns the slot: this one and
      // serve_http end now, so an idle WebSocket does not keep their frames, the HTTP read
      // buffer and the moved-from stream (issue 15: thousands of idle editor sockets). The
      // upgrade request was read whole; a client sends nothing before the 101.
      // The handler keeps the connection alive until run() has taken its own reference.
      asio::co_spawn(executor, conn->run(std::move(request)),
                     [conn, release = std::move(release)](std::exception_ptr e) {
                       log_coroutine_failure(std::move(e));
                     });
      co_return;
    }
    HttpAnswer answer = ctx.http_handler.handle_http(request.method_string(), request.target(),
                                                 request.body());
    http::response<http::string_body> response{static_cast<http::status>(answer.status),
                                               request.version()};
    response.set(http::field::server, "pi-server/" PI_SERVER_VERSION);
    response.set(http::field::content_type, answer.content_type);
    // A socket let in over the cap gets one answer, then is closed.
    response.keep_alive(request.keep_alive() && !ctx.over_cap);
    response.body() = std::move(answer.body);
    response.prepare_payload();
    if (request.method() == http::verb::head) response.body().clear();
    auto [wec, wn] = co_await http::async_write(stream, response, kTuple);
    if (wec || !response.keep_alive()) {
      shutdown_send(lowest);
      co_return;
    }
  }
}

asio::awaitable<void> serve_http(tcp::socket socket, ServeContext ctx,
                                 std::shared_ptr<ssl::context> tls) {
  if (!ctx.accounting->table.contains(ctx.slot)) co_return;  // listener gone meanwhile
  SlotRelease release(ctx.accounting, ctx.slot);
  beast::tcp_stream tcp_stream(std::move(socket));
  if (!tls) {
    closable_until_upgrade(ctx, tcp_stream);
    co_await serve_requests(tcp_stream, ctx, release);
    co_return;
  }
  // TLS: the handshake first; a client that speaks plain HTTP or ws:// here fails it and is
  // closed without an answer. The context is the one current at accept (SIGHUP swaps it for
  // new connections only); `tls` keeps it alive for this connection's handshake.
  TlsStream stream(std::move(tcp_stream), *tls);
  closable_until_upgrade(ctx, stream);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kTuple);
  if (ec) {
    log::debug("tls_handshake_failed", {{"error", ec.message()}});
    co_return;
  }
  co_await serve_requests(stream, ctx, release);
}

// A server context from PEM files: TLS 1.2 or later, the key checked against the
// certificate. Fails with the file and OpenSSL's reason.
Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsOptions& options) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  beast::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  if (!ec && SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
    return Status::error("cannot require TLS 1.2");
  if (!ec) ctx->use_certificate_chain_file(options.cert_file.string(), ec);
  if (ec)
    return Status::error("TLS certificate " + options.cert_file.string() + ": " + ec.message());
  ctx->use_private_key_file(options.key_file.string(), ssl::context::pem, ec);
  if (ec) return Status::error("TLS key " + options.key_file.string() + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    return Status::error("TLS key " + options.key_file.string() + " does not match the certificate " +
                         options.cert_file.string());
  return ctx;
}

class TcpListener : public Listener, public std::enable_shared_from_this<TcpListener> {
 public:
  TcpListener(asio::io_context& io, ConnectionHandler* ws_handler, HttpHandler& http_handler,
              Authenticator* authenticator, const ConnectionLimits& limits,
              std::size_t max_sockets)
      : acceptor_(io),
        ws_handler_(ws_handler),
        http_handler_(http_handler),
        authenticator_(authenticator),
        limits_(limits),
        max_sockets_(max_sockets),
        accounting_(std::make_shared<SocketAccounting>()) {
    accounting_->heartbeat = std::make_shared<HeartbeatMonitor>(
        io.get_executor(), std::chrono::duration_cast<std::chrono::milliseconds>(limits.heartbeat));
  }
  ~TcpListener() override {
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
  }

  Status bind(const std::string& host, std::uint16_t port) {
    beast::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return Status::error("invalid listen address '" + host + "': " + ec.message());
    tcp::endpoint endpoint(address, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    // accept4() on the shedding path must never block.
    if (!ec) acceptor_.native_non_blocking(true, ec);
    if (ec)
      return Status::error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                           ec.message());
    return Status::ok();
  }

  // A socket someone else bound and put in listening state (systemd socket activation).
  Status adopt(int fd) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0)
      return Status::error(std::string("passed socket: ") + std::strerror(errno));
    beast::error_code ec;
    acceptor_.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (!ec) acceptor_.native_non_blocking(true, ec);
    if (ec) return Status::error("cannot use the passed socket: " + ec.message());
    return Status::ok();
  }

  void start() {
    reserve_fd_ = open_reserve();
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
  void set_max_sockets(std::size_t max_sockets) override { max_sockets_ = max_sockets; }
  ListenerStats stats() const override {
    auto stats = accounting_->stats;
    stats.open_sockets = accounting_->table.size();
    return stats;
  }

  Status use_tls(const TlsOptions& options) {
    auto context = make_tls_context(options);
    if (!context) return context.status();
    tls_options_ = options;
    tls_ = std::move(context.value());
    return Status::ok();
  }

  Status reload_tls() override {
    if (!tls_) return Status::ok();
    auto context = make_tls_context(tls_options_);
    if (!context) return context.status();
    tls_ = std::move(context.value());  // connections in flight keep theirs
    return Status::ok();
  }

 private:
  static int open_reserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

  static bool out_of_descriptors(const boost::system::error_code& ec) {
    return ec == boost::system::errc::too_many_files_open ||
           ec == boost::system::errc::too_many_files_open_in_system;
  }

  // Out of descriptors with none to reclaim: accept the pending connection on the reserve
  // descriptor and close it at once, so the client learns now instead of waiting in the
  // backlog. False if there was nothing to accept (or no reserve).
  bool shed_one() {
    if (reserve_fd_ < 0) reserve_fd_ = open_reserve();
    if (reserve_fd_ < 0) return false;
    ::close(reserve_fd_);
    int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) ::close(fd);
    reserve_fd_ = open_reserve();
    return fd >= 0;
  }

  // A connection waits in the backlog (poll needs no descriptor).
  bool connection_pending() {
    pollfd pfd{acceptor_.native_handle(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<TcpListener> self) {
    asio::steady_timer backoff(acceptor_.get_executor());
    auto& table = accounting_->table;
    auto& stats = accounting_->stats;
    while (acceptor_.is_open()) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
      if (ec && out_of_descriptors(ec)) {
        // accept() fails with EMFILE before it looks at the queue: reclaim nothing until a
        // connection is really waiting, then accept again (a descriptor may be free by then).
        if (!connection_pending()) {
          auto [wait_ec] = co_await acceptor_.async_wait(tcp::acceptor::wait_read, kTuple);
          if (wait_ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
          if (!wait_ec) continue;
        } else if (table.evict_oldest()) {
          // A client is waiting: the oldest socket still in its handshake makes room.
          ++stats.evicted_total;
          evicted_warning_.note("out of descriptors: " + ec.message(), stats.evicted_total);
          continue;
        } else if (shed_one()) {
          // Nothing to reclaim: the waiting client is closed at once.
          ++stats.shed_total;
          shed_warning_.note(ec.message(), stats.shed_total);
          continue;
        }
      }
      if (ec) {
        // Nothing to shed, or another failure: wait a little instead of spinning.
        failed_warning_.note(ec.message(), ++accept_failures_);
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(kTuple);
        continue;
      }
      // Sockets that have not upgraded (no credentials checked yet, each may hold a
      // request buffer) have their own bound, whatever --max-connections allows for
      // WebSocket clients: past it the oldest of them makes room.
      if (table.before_upgrade() >= kMaxSocketsBeforeUpgrade &&
          table.evict_oldest_before_upgrade()) {
        ++stats.evicted_total;
        evicted_warning_.note("sockets before their upgrade (max " +
                                  std::to_string(kMaxSocketsBeforeUpgrade) + ")",
                              stats.evicted_total);
      }
      bool over_cap = false;
      if (max_sockets_ > 0 && table.size() >= max_sockets_) {
        if (table.evict_oldest()) {
          ++stats.evicted_total;
          evicted_warning_.note("max connections (" + std::to_string(max_sockets_) + ")",
                                stats.evicted_total);
        } else {
          over_cap = true;  // every socket is an admitted WebSocket: this one is refused
        }
      }
      ++stats.accepted_total;
      auto slot = table.add();
      stats.open_sockets = table.size();
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      asio::co_spawn(acceptor_.get_executor(),
                     serve_http(std::move(socket),
                                ServeContext{ws_handler_, http_handler_, authenticator_, limits_,
                                             accounting_, slot, over_cap},
                                tls_),
                     log_coroutine_failure);
    }
  }

  tcp::acceptor acceptor_;
  ConnectionHandler* ws_handler_;
  HttpHandler& http_handler_;
  Authenticator* authenticator_;
  ConnectionLimits limits_;
  std::size_t max_sockets_;
  std::shared_ptr<SocketAccounting> accounting_;
  TlsOptions tls_options_;
  std::shared_ptr<ssl::context> tls_;  // null: plain ws:// and http://
  int reserve_fd_ = -1;
  std::uint64_t accept_failures_ = 0;
  RateLimitedWarning evicted_warning_{"socket_evicted"};
  RateLimitedWarning shed_warning_{"accept_shed"};
  RateLimitedWarning failed_warning_{"accept_failed"};
};

}  // namespace

Result<std::shared_ptr<Listener>> start_listener(
    asio::io_context& io, const std::string& host, std::uint16_t port,
    ConnectionHandler* ws_handler, HttpHandler& http_handler, Authenticator* authenticator,
    const ConnectionLimits& limits, std::size_t max_sockets, const TlsOptions& tls) {
  auto listener = std::make_shared<TcpListener>(io, ws_handler, http_handler, authenticator,
                                                limits, max_sockets);
  if (tls.enabled())
    if (auto loaded = listener->use_tls(tls); !loaded) return loaded;
  if (auto bound = listener->bind(host, port); !bound) return bound;
  listener->start();
  return std::shared_ptr<Listener>(listener);
}

Result<std::shared_ptr<Listener>> start_listener_on(
    asio::io_context& io, int listening_fd, ConnectionHandler* ws_handler,
    HttpHandler& http_handler, Authenticator* authenticator, const ConnectionLimits& limits,
    std::size_t max_sockets, const TlsOptions& tls) {
  auto listener = std::make_shared<TcpListener>(io, ws_handler, http_handler, authenticator,
                                                limits, max_sockets);
  if (tls.enabled())
    if (auto loaded = listener->use_tls(tls); !loaded) return loaded;
  if (auto adopted = listener->adopt(listening_fd); !adopted) return adopted;
  listener->start();
  return std::shared_ptr<Listener>(listener);
}

std::size_t raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    log::warn("fd_limit_unknown", {{"error", std::strerror(errno)}});
    return 1024;
  }
  rlim_t before = limit.rlim_cur;
  rlim_t target = limit.rlim_max;
  if (target == RLIM_INFINITY) {
    // The kernel refuses an infinite soft limit for descriptors; its ceiling is nr_open.
    std::ifstream nr_open("/proc/sys/fs/nr_open");
    unsigned long value = 0;
    target = (nr_open >> value) ? static_cast<rlim_t>(value) : before;
  }
  if (target > before) {
    limit.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      log::warn("fd_limit_raise_failed", {{"softBefore", before}, {"hard", limit.rlim_max},
                                          {"error", std::strerror(errno)}});
      return static_cast<std::size_t>(before);
    }
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  log::info("fd_limit", {{"softBefore", before}, {"soft", limit.rlim_cur}, {"hard", limit.rlim_max}});
  return static_cast<std::size_t>(limit.rlim_cur);
}

std::size_t connection_cap_for(std::size_t descriptor_limit, std::size_t live_agents) {
  std::size_t floor = std::min<std::size_t>(1024, std::max<std::size_t>(descriptor_limit / 2, 1));
  // (An absurd --max-sessions must not overflow: it reserves everything.)
  std::size_t reserved = live_agents >= descriptor_limit
                             ? descriptor_limit
                             : kDescriptorReserve + kDescriptorsPerAgent * live_agents;
  std::size_t left = descriptor_limit > reserved ? descriptor_limit - reserved : 0;
  return std::clamp(left, floor, std::max(floor, kMaxDefaultConnections));
}

}  // namespace pi_server::transport
