#include "cogo/policy/backoff.h"

#include <gtest/gtest.h>

namespace cogo::policy {
namespace {

using std::chrono::milliseconds;

struct BackoffCase {
  int attempt;
  double sample;
  int64_t expected_ms;
};

TEST(Backoff, DoublesFromBaseUpToCap) {
  const BackoffParams params{milliseconds(100), milliseconds(1000), 2.0, 0.2};
  const BackoffCase cases[] = {
      {1, 0.5, 100}, {2, 0.5, 200}, {3, 0.5, 400}, {4, 0.5, 800}, {5, 0.5, 1000},
      {60, 0.5, 1000}, {1000, 0.5, 1000},
      {1, 0.0, 80}, {1, 1.0, 120}, {3, 0.0, 320}, {5, 1.0, 1000},  // jitter never passes the cap
      {0, 0.5, 100}, {-3, 0.5, 100},                                // nonsense attempts clamp to 1
  };
  for (const auto& c : cases) {
    EXPECT_EQ(NextBackoff(c.attempt, params, c.sample).count(), c.expected_ms)
        << "attempt " << c.attempt << " sample " << c.sample;
  }
}

TEST(Backoff, ZeroJitterIgnoresSample) {
  const BackoffParams params{milliseconds(50), milliseconds(10000), 3.0, 0.0};
  EXPECT_EQ(NextBackoff(3, params, 0.0).count(), 450);
  EXPECT_EQ(NextBackoff(3, params, 0.99).count(), 450);
}

}  // namespace
}  // namespace cogo::policy
