// Property: framing the input in chunks chosen by the input itself gives the same lines and
// oversize reports as framing it whole.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/line_framer.hpp"

namespace {
struct Collect : pi_server::protocol::LineFramer::Sink {
  std::vector<std::string> lines;
  std::vector<std::size_t> oversize;
  void on_line(std::string_view l) override { lines.emplace_back(l); }
  void on_oversize(std::size_t n) override { oversize.push_back(n); }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t max_line = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  pi_server::protocol::LineFramer whole(max_line), chunked(max_line);
  Collect a, b;
  whole.feed(input, a);
  std::size_t i = 0, k = 0;
  while (i < input.size()) {
    std::size_t n = 1 + static_cast<unsigned char>(input[k++ % input.size()]) % 13;
    n = std::min(n, input.size() - i);
    chunked.feed(input.substr(i, n), b);
    i += n;
  }
  if (a.lines != b.lines || a.oversize != b.oversize) std::abort();
  for (const auto& l : a.lines)
    if (l.size() > max_line || l.find('\n') != std::string::npos) std::abort();
  return 0;
}
