// Retry backoff: a pure function of the attempt number and a jitter sample, so every caller
// (bus fail, executor, workflow Retry nodes) computes the same schedule and tests can pin it.
// Thread-safe: no state.
#pragma once

#include <chrono>
#include <cstdint>

namespace cogo::policy {

struct BackoffParams {
  std::chrono::milliseconds base{1000};  // delay after the first failed attempt
  std::chrono::milliseconds cap{300000};  // no delay is ever longer than this
  double multiplier = 2.0;                // growth per attempt
  double jitter = 0.2;                    // +/- fraction of the delay, spread by `unit_sample`
};

// Delay before retrying after `attempt` (1-based) failed. `unit_sample` in [0, 1) picks the
// jitter: 0.5 is the undisturbed delay; callers pass a random sample, tests a fixed one.
[[nodiscard]] std::chrono::milliseconds NextBackoff(int attempt, const BackoffParams& params,
                                                    double unit_sample);

}  // namespace cogo::policy
