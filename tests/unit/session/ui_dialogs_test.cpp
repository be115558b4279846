#include "session/ui_dialogs.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "manual_clock.hpp"

using namespace pi_server;
using namespace std::chrono_literals;
using pi_server::session::UiDialogs;
using pi_server::testing::ManualClock;

namespace {

class UiDialogsTest : public ::testing::Test {
 protected:
  ManualClock clock;
  std::vector<std::pair<std::string, std::string>> cancelled;  // (id, reason)
  UiDialogs dialogs{clock, 2, 10s, [this](const std::string& id, std::string_view reason) {
                      cancelled.emplace_back(id, std::string(reason));
                    }};
  using Cancel = std::pair<std::string, std::string>;
};

}  // namespace

TEST(UiDialogsRule, OnlyDialogMethodsWaitForAnAnswer) {
  for (auto m : {"select", "confirm", "input", "editor"}) EXPECT_TRUE(UiDialogs::waits_for_answer(m));
  for (auto m : {"notify", "setStatus", "setWidget", "setTitle", "set_editor_text", ""})
    EXPECT_FALSE(UiDialogs::waits_for_answer(m)) << m;
}

TEST_F(UiDialogsTest, KeepsArrivalOrderAndIgnoresDuplicates) {
  EXPECT_EQ(dialogs.track("b", std::nullopt), UiDialogs::Track::added);
  EXPECT_EQ(dialogs.track("a", std::nullopt), UiDialogs::Track::added);
  EXPECT_EQ(dialogs.track("b", std::nullopt), UiDialogs::Track::already_pending);
  EXPECT_EQ(dialogs.ids(), (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(dialogs.pending("a"));
  EXPECT_FALSE(dialogs.pending("c"));
}

TEST_F(UiDialogsTest, TimeoutCancelsWithReasonTimeout) {
  ASSERT_EQ(dialogs.track("a", std::nullopt), UiDialogs::Track::added);
  clock.advance(9999ms);
  EXPECT_TRUE(cancelled.empty());
  EXPECT_TRUE(dialogs.pending("a"));
  clock.advance(1ms);
  EXPECT_EQ(cancelled, (std::vector<Cancel>{{"a", "timeout"}}));
  EXPECT_FALSE(dialogs.pending("a"));
  EXPECT_TRUE(dialogs.ids().empty());
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST_F(UiDialogsTest, ForgetStopsTheTimer) {
  ASSERT_EQ(dialogs.track("a", std::nullopt), UiDialogs::Track::added);
  EXPECT_TRUE(dialogs.forget("a"));
  EXPECT_FALSE(dialogs.forget("a"));
  EXPECT_EQ(clock.pending_timers(), 0u);
  clock.advance(20s);
  EXPECT_TRUE(cancelled.empty());
}

TEST_F(UiDialogsTest, OwnTimeoutFirstMeansForgottenWithoutCancel) {
  // pi resolves a dialog with its own timeout itself; we stop tracking it a second later.
  ASSERT_EQ(dialogs.track("a", 2000), UiDialogs::Track::added);
  clock.advance(2999ms);
  EXPECT_TRUE(dialogs.pending("a"));
  clock.advance(1ms);
  EXPECT_FALSE(dialogs.pending("a"));
  EXPECT_TRUE(cancelled.empty());
}

TEST_F(UiDialogsTest, OwnTimeoutLaterThanOursIsCancelledByOurs) {
  ASSERT_EQ(dialogs.track("a", 9500), UiDialogs::Track::added);  // 9.5 s + 1 s > 10 s
  clock.advance(10s);
  EXPECT_EQ(cancelled, (std::vector<Cancel>{{"a", "timeout"}}));
}

TEST_F(UiDialogsTest, OverTheLimitIsCancelledOnALaterTurnNotTracked) {
  ASSERT_EQ(dialogs.track("a", std::nullopt), UiDialogs::Track::added);
  ASSERT_EQ(dialogs.track("b", std::nullopt), UiDialogs::Track::added);
  EXPECT_EQ(dialogs.track("c", std::nullopt), UiDialogs::Track::over_limit);
  EXPECT_FALSE(dialogs.pending("c"));
  EXPECT_TRUE(cancelled.empty());  // not synchronously: the request is shown first
  clock.run_due();
  EXPECT_EQ(cancelled, (std::vector<Cancel>{{"c", "too_many_pending"}}));
  EXPECT_EQ(dialogs.ids(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(UiDialogsTest, CancelAndCancelAllReportOnlyPendingDialogsOldestFirst) {
  ASSERT_EQ(dialogs.track("b", std::nullopt), UiDialogs::Track::added);
  ASSERT_EQ(dialogs.track("a", std::nullopt), UiDialogs::Track::added);
  EXPECT_FALSE(dialogs.cancel("zzz", "aborted"));
  EXPECT_TRUE(cancelled.empty());
  dialogs.cancel_all("agent_exited");
  EXPECT_EQ(cancelled, (std::vector<Cancel>{{"b", "agent_exited"}, {"a", "agent_exited"}}));
  EXPECT_EQ(dialogs.size(), 0u);
  EXPECT_EQ(clock.pending_timers(), 0u);
  EXPECT_FALSE(dialogs.cancel("a", "again"));
  EXPECT_EQ(cancelled.size(), 2u);
}

TEST(UiDialogsLifetime, DestroyingTheTableCancelsItsTimers) {
  ManualClock clock;
  int calls = 0;
  {
    UiDialogs dialogs(clock, 1, 10s, [&](const std::string&, std::string_view) { ++calls; });
    ASSERT_EQ(dialogs.track("a", std::nullopt), UiDialogs::Track::added);
    ASSERT_EQ(dialogs.track("b", std::nullopt), UiDialogs::Track::over_limit);
    EXPECT_EQ(clock.pending_timers(), 2u);
  }
  EXPECT_EQ(clock.pending_timers(), 0u);
  clock.advance(20s);
  EXPECT_EQ(calls, 0);
}
