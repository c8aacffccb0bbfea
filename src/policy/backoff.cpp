#include "cogo/policy/backoff.h"

#include <algorithm>
#include <cmath>

namespace cogo::policy {

std::chrono::milliseconds NextBackoff(int attempt, const BackoffParams& params,
                                      double unit_sample) {
  const double base = static_cast<double>(params.base.count());
  const double cap = static_cast<double>(params.cap.count());
  const int exponent = std::clamp(attempt, 1, 64) - 1;
  // pow overflows to inf for large exponents; min() against the cap keeps it finite.
  const double raw = std::min(base * std::pow(std::max(params.multiplier, 1.0), exponent), cap);
  const double sample = std::clamp(unit_sample, 0.0, 1.0);
  const double jittered = raw * (1.0 + params.jitter * (2.0 * sample - 1.0));
  return std::chrono::milliseconds(static_cast<int64_t>(std::clamp(jittered, 0.0, cap)));
}

}  // namespace cogo::policy
