#include "cogo/base/clock.h"

#include <gtest/gtest.h>

namespace {

using cogo::base::Clock;
using cogo::base::DeadlineOnSteadyClock;
using cogo::base::ManualClock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using WallTime = std::chrono::system_clock::time_point;

// A deadline is as far from the steady reading as it was from the database's now(): how far the
// database's clock is from this host's wall clock never enters.
TEST(DeadlineOnSteadyClock, KeepsTheDistanceTheDatabaseMeasured) {
  const Clock::TimePoint sent = Clock::TimePoint(seconds(1000));
  struct Case {
    const char* name;
    WallTime database_now;
    milliseconds remaining;
  };
  const Case cases[] = {
      {"database clock at the epoch", WallTime(seconds(0)), milliseconds(1500)},
      {"database clock far ahead", WallTime(seconds(4'000'000'000)), milliseconds(1500)},
      {"already past", WallTime(seconds(50)), milliseconds(-200)},
      {"due now", WallTime(seconds(50)), milliseconds(0)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(DeadlineOnSteadyClock(c.database_now + c.remaining, c.database_now, sent),
              sent + c.remaining);
  }
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  const auto start = clock.Now();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(seconds(61));
  EXPECT_EQ(clock.Now() - start, seconds(61));
}

}  // namespace
