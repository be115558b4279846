#include "protocol/line_framer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using pi_server::protocol::LineFramer;

namespace {

struct Collect : LineFramer::Sink {
  std::vector<std::string> lines;
  std::vector<std::size_t> oversize;
  void on_line(std::string_view l) override { lines.emplace_back(l); }
  void on_oversize(std::size_t n) override { oversize.push_back(n); }
};

Collect frame_whole(std::string_view input, std::size_t max) {
  LineFramer f(max);
  Collect c;
  f.feed(input, c);
  return c;
}

Collect frame_chunked(std::string_view input, std::size_t max, unsigned seed) {
  LineFramer f(max);
  Collect c;
  std::mt19937 rng(seed);
  std::size_t i = 0;
  while (i < input.size()) {
    std::size_t n = std::min<std::size_t>(input.size() - i, 1 + rng() % 7);
    f.feed(input.substr(i, n), c);
    i += n;
  }
  return c;
}

}  // namespace

TEST(LineFramer, SplitsOnLfOnlyAndStripsOneCr) {
  auto c = frame_whole("a\nb\r\nc\r\r\n\nd", 100);
  ASSERT_EQ(c.lines.size(), 4u);
  EXPECT_EQ(c.lines[0], "a");
  EXPECT_EQ(c.lines[1], "b");
  EXPECT_EQ(c.lines[2], "c\r");
  EXPECT_EQ(c.lines[3], "");  // "d" has no newline yet
}

TEST(LineFramer, NeverSplitsOnUnicodeLineSeparators) {
  std::string line = "{\"t\":\"a\xE2\x80\xA8" "b\xE2\x80\xA9" "c\"}";
  auto c = frame_whole(line + "\n", 100);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0], line);
}

TEST(LineFramer, ChunkedEqualsWhole) {
  std::string input;
  for (int i = 0; i < 200; ++i) input += std::string(i % 37, 'x') + (i % 3 ? "\r\n" : "\n");
  auto whole = frame_whole(input, 30);
  for (unsigned seed = 0; seed < 20; ++seed) {
    auto chunked = frame_chunked(input, 30, seed);
    EXPECT_EQ(chunked.lines, whole.lines);
    EXPECT_EQ(chunked.oversize, whole.oversize);
  }
}

TEST(LineFramer, DropsOverlongLinesAndRecovers) {
  std::string input = "ok\n" + std::string(50, 'y') + "\nafter\n";
  for (unsigned seed = 0; seed < 5; ++seed) {
    auto c = frame_chunked(input, 10, seed);
    ASSERT_EQ(c.lines.size(), 2u);
    EXPECT_EQ(c.lines[0], "ok");
    EXPECT_EQ(c.lines[1], "after");
    ASSERT_EQ(c.oversize.size(), 1u);
    EXPECT_EQ(c.oversize[0], 50u);
  }
}

TEST(LineFramer, LineExactlyAtLimitIsKept) {
  auto c = frame_whole(std::string(10, 'z') + "\r\n", 10);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_TRUE(c.oversize.empty());
}

TEST(LineFramer, HoldsNoMoreThanTheLimitWhileDiscarding) {
  LineFramer f(1000);
  Collect c;
  std::string chunk(4096, 'q');
  for (int i = 0; i < 100; ++i) {
    f.feed(chunk, c);
    EXPECT_LE(f.buffered(), 1000u + 4096u);
  }
  EXPECT_TRUE(f.discarding());
  f.feed("tail\nnext\n", c);
  ASSERT_EQ(c.oversize.size(), 1u);
  EXPECT_EQ(c.oversize[0], 100u * 4096u + 4u);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0], "next");
}

TEST(LineFramer, LargeLineArrivesWhole) {
  std::string big(5 << 20, 'b');
  LineFramer f(16 << 20);
  Collect c;
  for (std::size_t i = 0; i < big.size(); i += 65536) f.feed(std::string_view(big).substr(i, 65536), c);
  f.feed("\n", c);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0].size(), big.size());
}
