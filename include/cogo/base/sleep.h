// SleepFor: a sleep that a stop token cuts short, for every background loop's pauses (poll
// intervals, reconnect backoff, retention pauses, provider retry waits). Thread-safe.
#pragma once

#include <chrono>
#include <stop_token>

namespace cogo::base {

// Sleeps for `duration` unless stop is requested first; returns false when stopped.
bool SleepFor(std::stop_token stop, std::chrono::milliseconds duration);

}  // namespace cogo::base
