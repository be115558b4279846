#include "session/event_ring.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace pi_server;
using pi_server::session::EventRing;

namespace {

Frame frame_of(std::size_t bytes, char c = 'x') { return make_frame(std::string(bytes, c)); }

std::vector<std::uint64_t> seqs(const EventRing::Replay& r) {
  std::vector<std::uint64_t> out;
  for (const auto& [seq, frame] : r.events) out.push_back(seq);
  return out;
}

}  // namespace

TEST(EventRing, EmptyRingHasNoGapAndPointsAtTheFirstSeq) {
  EventRing ring(100);
  auto r = ring.after(0);
  EXPECT_FALSE(r.gap);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(ring.bytes(), 0u);
}

TEST(EventRing, KeepsFramesUpToItsByteBoundAndDropsTheOldest) {
  EventRing ring(100);
  for (std::uint64_t seq = 1; seq <= 4; ++seq) ring.push(seq, frame_of(30));
  // 4 x 30 = 120 > 100: the first frame is gone.
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.bytes(), 90u);
  auto all = ring.after(0);
  EXPECT_TRUE(all.gap);  // seq 1 left the buffer
  EXPECT_EQ(seqs(all), (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(all.first_seq, 2u);

  auto from_1 = ring.after(1);  // the client has 1: nothing is missing
  EXPECT_FALSE(from_1.gap);
  EXPECT_EQ(seqs(from_1), (std::vector<std::uint64_t>{2, 3, 4}));

  auto from_3 = ring.after(3);
  EXPECT_FALSE(from_3.gap);
  EXPECT_EQ(seqs(from_3), (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(from_3.first_seq, 4u);
}

TEST(EventRing, UpToDateClientGetsNothingAndTheNextSeq) {
  EventRing ring(100);
  ring.push(1, frame_of(10));
  ring.push(2, frame_of(10));
  auto r = ring.after(2);
  EXPECT_FALSE(r.gap);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.first_seq, 3u);
}

TEST(EventRing, FramesAreSharedNotCopied) {
  EventRing ring(100);
  Frame f = frame_of(10, 'a');
  ring.push(1, f);
  auto r = ring.after(0);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].second.get(), f.get());
}

TEST(EventRing, FrameBiggerThanTheBoundIsNotKeptButCounts) {
  EventRing ring(50);
  ring.push(1, frame_of(10));
  ring.push(2, frame_of(60));
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.bytes(), 0u);
  auto r = ring.after(0);
  EXPECT_TRUE(r.gap);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.first_seq, 3u);
  EXPECT_FALSE(ring.after(2).gap);
}
