#pragma once
// Raw TCP sockets against the daemon, for what a well-behaved client library will not do:
// connect and send nothing, hand-made WebSocket frames (close codes a client must not send).
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pi_server::testing {

// A connected TCP socket to 127.0.0.1:port with a receive timeout, closed on destruction.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port,
                     std::chrono::milliseconds recv_timeout = std::chrono::seconds(5)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    timeval tv{static_cast<time_t>(recv_timeout.count() / 1000),
               static_cast<suseconds_t>((recv_timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(RawSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RawSocket& operator=(RawSocket&&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  bool send_all(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  enum class ReadEnd { data, eof, timeout, error };
  // Appends what arrives to `in` until `done(in)` holds; how the reading ended.
  template <class Done>
  ReadEnd read_until(std::string& in, Done done) {
    char buf[16384];
    while (!done(in)) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) return ReadEnd::eof;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadEnd::timeout;
      if (errno == EINTR) continue;
      return ReadEnd::error;  // ECONNRESET counts as closed by the daemon too
    }
    return ReadEnd::data;
  }
  // Reads until EOF, a reset or the timeout: true if the daemon closed the connection.
  bool closed_by_peer() {
    std::string ignored;
    auto end = read_until(ignored, [](const std::string&) { return false; });
    return end == ReadEnd::eof || end == ReadEnd::error;
  }

  // Sends a WebSocket upgrade request and reads the 101 response; leftover bytes (frames
  // sent right after it) stay in `in`.
  bool websocket_handshake(std::string& in) {
    std::string upgrade =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (!send_all(upgrade)) return false;
    if (read_until(in, [](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; }) !=
        ReadEnd::data)
      return false;
    if (in.rfind("HTTP/1.1 101", 0) != 0) return false;
    in.erase(0, in.find("\r\n\r\n") + 4);
    return true;
  }

 private:
  int fd_ = -1;
};

// A masked client frame (FIN set) with a payload under 126 bytes.
inline std::string masked_frame(std::uint8_t opcode, const std::string& payload) {
  const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
  std::string frame;
  frame.push_back(static_cast<char>(0x80 | opcode));
  frame.push_back(static_cast<char>(0x80 | payload.size()));
  for (unsigned char m : mask) frame.push_back(static_cast<char>(m));
  for (std::size_t i = 0; i < payload.size(); ++i)
    frame.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]));
  return frame;
}

// A close frame carrying `code` (and no reason).
inline std::string masked_close_frame(std::uint16_t code) {
  std::string payload = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return masked_frame(0x8, payload);
}

struct ServerFrame {
  int opcode;
  std::string payload;
};

// The complete unmasked server frames at the front of `in` (an incomplete one ends it).
inline std::vector<ServerFrame> server_frames(const std::string& in) {
  std::vector<ServerFrame> frames;
  std::size_t at = 0;
  while (at + 2 <= in.size()) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(in[i]); };
    int opcode = byte(at) & 0x0F;
    std::uint64_t len = byte(at + 1) & 0x7F;
    std::size_t header = 2;
    if (len == 126) {
      if (at + 4 > in.size()) break;
      len = (std::uint64_t(byte(at + 2)) << 8) | byte(at + 3);
      header = 4;
    } else if (len == 127) {
      if (at + 10 > in.size()) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | byte(at + 2 + i);
      header = 10;
    }
    if (at + header + len > in.size()) break;
    frames.push_back({opcode, in.substr(at + header, len)});
    at += header + len;
  }
  return frames;
}

// The code of the first close frame in `in` (0 for a close frame without a code), or
// nullopt if none is complete yet.
inline std::optional<int> find_close_code(const std::string& in) {
  for (const auto& f : server_frames(in)) {
    if (f.opcode != 0x8) continue;
    if (f.payload.size() < 2) return 0;
    return (int(static_cast<unsigned char>(f.payload[0])) << 8) | static_cast<unsigned char>(f.payload[1]);
  }
  return std::nullopt;
}

// How many sockets (of any kind: listeners included) process `pid` has open.
inline int open_socket_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int count = 0;
  while (auto* entry = ::readdir(d)) {
    char target[256];
    std::string path = dir + "/" + entry->d_name;
    ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    if (std::string(target).rfind("socket:", 0) == 0) ++count;
  }
  ::closedir(d);
  return count;
}

// How many descriptors process `pid` has open.
inline int open_fd_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int count = 0;
  while (auto* entry = ::readdir(d))
    if (entry->d_name[0] != '.') ++count;
  ::closedir(d);
  return count;
}

}  // namespace pi_server::testing
