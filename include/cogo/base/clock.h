// The process's steady time, injected: components that judge time in-process (the worker's
// deadline watchdog and guards) read a Clock, so tests move a ManualClock instead of sleeping.
// Deadlines themselves come from the database's clock: DeadlineOnSteadyClock turns one into a
// moment of this process's steady clock, so no host's wall clock moves it.
// Thread-safety: Now() and ManualClock::Advance may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>

namespace cogo::base {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint Now() const = 0;
};

// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};

// The one real clock, for components given none.
[[nodiscard]] inline const Clock& RealClock() {
  static const SteadyClock clock;
  return clock;
}

// Starts at the real clock's now and moves only when told.
class ManualClock final : public Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  [[nodiscard]] TimePoint Now() const override { return TimePoint(Duration(ticks_.load())); }
  void Advance(Duration by) { ticks_ += by.count(); }

 private:
  std::atomic<Duration::rep> ticks_{std::chrono::steady_clock::now().time_since_epoch().count()};
};

// A moment on the database's clock (a timestamptz), as statements return it:
// extract(epoch FROM ...)::float8 seconds.
using DatabaseTime = std::chrono::system_clock::time_point;
[[nodiscard]] inline DatabaseTime FromEpochSeconds(double seconds) {
  return DatabaseTime(std::chrono::duration_cast<DatabaseTime::duration>(
      std::chrono::duration<double>(seconds)));
}

// A deadline on the database's clock as a moment of this process's steady clock, given one
// reading of both: `database_now` (a statement's now()) and `steady_before`, taken before the
// statement was sent. The statement's round trip only makes the result earlier, never later.
[[nodiscard]] inline Clock::TimePoint DeadlineOnSteadyClock(DatabaseTime deadline,
                                                            DatabaseTime database_now,
                                                            Clock::TimePoint steady_before) {
  return steady_before +
         std::chrono::duration_cast<Clock::TimePoint::duration>(deadline - database_now);
}

}  // namespace cogo::base
