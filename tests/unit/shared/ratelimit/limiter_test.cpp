#include "shared/ratelimit/limiter.hpp"

#include <gtest/gtest.h>

namespace lab::shared::ratelimit {
namespace {

using namespace std::chrono_literals;
using Clock = Limiter::Clock;

TEST(Limiter, AnUnchargedCallerIsServed) {
  Limiter l({.burst = 3, .per_second = 1, .max_callers = 10});
  EXPECT_EQ(l.retry_after("10.0.0.1", Clock::now()), 0);
  EXPECT_EQ(l.size(), 0U);
}

TEST(Limiter, TheBurstIsSpentThenRefillsAtTheRate) {
  Limiter l({.burst = 3, .per_second = 0.5, .max_callers = 10});
  const auto t0 = Clock::time_point{} + 100s;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(l.retry_after("a", t0), 0) << i;
    l.charge("a", t0);
  }
  // Spent: one failure comes back every 2 s.
  EXPECT_EQ(l.retry_after("a", t0), 2);
  EXPECT_EQ(l.retry_after("a", t0 + 1s), 1);
  EXPECT_EQ(l.retry_after("a", t0 + 2s), 0);
  // Another caller has its own budget.
  EXPECT_EQ(l.retry_after("b", t0), 0);
}

TEST(Limiter, ChargingWhileBlockedDigsDeeperButBounded) {
  Limiter l({.burst = 2, .per_second = 1, .max_callers = 10});
  const auto t0 = Clock::time_point{} + 100s;
  for (int i = 0; i < 1000; ++i)
    l.charge("a", t0);
  // At most `burst` below zero: a flood is forgiven within 2 × burst / rate seconds.
  EXPECT_EQ(l.retry_after("a", t0), 3);
  EXPECT_EQ(l.retry_after("a", t0 + 3s), 0);
}

TEST(Limiter, TheTableIsBoundedLeastRecentFirst) {
  Limiter l({.burst = 1, .per_second = 0.01, .max_callers = 2});
  const auto t0 = Clock::time_point{} + 100s;
  l.charge("a", t0);
  l.charge("b", t0);
  l.charge("a", t0);  // a is now the most recent
  l.charge("c", t0);  // forgets b
  EXPECT_EQ(l.size(), 2U);
  EXPECT_GT(l.retry_after("a", t0), 0);
  EXPECT_EQ(l.retry_after("b", t0), 0);  // forgotten: a fresh budget
  EXPECT_GT(l.retry_after("c", t0), 0);  // a burst of one is spent by one failure
}

}  // namespace
}  // namespace lab::shared::ratelimit
