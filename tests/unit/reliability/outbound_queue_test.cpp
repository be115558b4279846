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
