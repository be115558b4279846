#include "reliability/outbound_queue.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace pi_server;
using pi_server::reliability::OutboundQueue;

namespace {
Frame frame_of(std::size_t n) { return make_frame(std::string(n, 'e')); }
}  // namespace

TEST(OutboundQueue, ControlFramesAreNeverDroppedBelowTheHardCap) {
  OutboundQueue q(100, 1000);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(q.push_control(frame_of(100)), SendStatus::queued);
  EXPECT_EQ(q.push_control(frame_of(200)), SendStatus::closed);
}

TEST(OutboundQueue, EventsOverHighWaterAreDroppedThenReportedOnce) {
  OutboundQueue q(100, 1000);
  EXPECT_EQ(q.push_event(frame_of(60), "s", 1), SendStatus::queued);
  EXPECT_EQ(q.push_event(frame_of(60), "s", 2), SendStatus::dropped);
  EXPECT_EQ(q.push_event(frame_of(10), "s", 3), SendStatus::dropped)
      << "after a drop, later events of that session wait for the gap notice";
  EXPECT_EQ(q.push_event(frame_of(10), "t", 1), SendStatus::queued);
  EXPECT_EQ(q.dropped_total(), 2u);
  q.pop();  // 60-byte frame written -> 10 bytes queued, under half the high-water mark
  std::vector<nlohmann::json> notices;
  while (!q.empty()) {
    auto j = nlohmann::json::parse(*q.front(), nullptr, false);
    if (!j.is_discarded() && j.is_object()) notices.push_back(j);
    q.pop();
  }
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0]["type"], "events_dropped");
  EXPECT_EQ(notices[0]["data"]["sessionId"], "s");
  EXPECT_EQ(notices[0]["data"]["fromSeq"], 2);
  EXPECT_EQ(notices[0]["data"]["toSeq"], 3);
  EXPECT_EQ(q.push_event(frame_of(10), "s", 4), SendStatus::queued);
  EXPECT_EQ(q.bytes(), 10u);
}

TEST(OutboundQueue, KeepsOrderWhileItNeverDrainsAndWhenItDrains) {
  // A writer that never catches up (the queue compacts its written prefix) and one that
  // does (the queue starts over): either way frames come out in the order they went in.
  OutboundQueue q(1u << 20, 1u << 20);
  int next_in = 0, next_out = 0;
  auto push = [&](int n) {
    for (int i = 0; i < n; ++i) q.push_control(make_frame(std::to_string(next_in++)));
  };
  auto pop = [&](int n) {
    for (int i = 0; i < n && !q.empty(); ++i) {
      EXPECT_EQ(*q.front(), std::to_string(next_out++));
      q.pop();
    }
  };
  for (int round = 0; round < 50; ++round) {
    push(7);
    pop(5);
  }
  std::size_t queued = 0;
  for (auto it = q.begin(); it != q.end(); ++it) EXPECT_EQ(**it, std::to_string(next_out + static_cast<int>(queued++)));
  EXPECT_EQ(queued, static_cast<std::size_t>(next_in - next_out));
  pop(next_in - next_out);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  push(3);
  pop(3);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(next_out, next_in);
}
