#include "cogo/metrics/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace cogo::metrics {
namespace {

TEST(LatencyHistogram, BucketsAreEightPerDoublingFromAHundredMicroseconds) {
  const struct {
    double seconds;
    int bucket;
  } cases[] = {
      {-0.5, 0}, {0.0, 0}, {0.00009, 0}, {0.0001, 1}, {0.000109, 1}, {0.00011, 2},  // 1e-4 * 2^(1/8) = 0.000109
      {0.00021, 9}, {0.001, 27}, {0.01, 54}, {0.1, 80}, {1.0, 107}, {5.0, 125}, {60.0, 154},
      {3600.0, 201}, {86400.0, 238}, {1e9, kLastLatencyBucket}, {NAN, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.seconds);
    EXPECT_EQ(LatencyBucket(c.seconds), c.bucket);
    if (c.seconds >= 0 && c.seconds < 1e7) {
      const auto [low, high] = LatencyBucketBounds(c.bucket);
      EXPECT_LE(low, c.seconds);
      EXPECT_LT(c.seconds, high);
    }
  }
  for (int b = 1; b < kLastLatencyBucket; ++b) {
    EXPECT_DOUBLE_EQ(LatencyBucketBounds(b).second, LatencyBucketBounds(b + 1).first) << b;
    EXPECT_NEAR(LatencyBucketBounds(b).second / LatencyBucketBounds(b).first, std::exp2(1.0 / 8), 1e-12);
  }
}

// percentile_cont over the raw values, as the exact path computes it, and how far the
// histogram's may be from it: the wider bucket of the two values it lies between.
std::pair<double, double> Exact(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const auto hi = static_cast<size_t>(std::ceil(pos));
  auto width = [](double v) {
    const auto [low, high] = LatencyBucketBounds(LatencyBucket(v));
    return high - low;
  };
  return {values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo)),
          std::max(width(values[lo]), width(values[hi]))};
}

TEST(LatencyHistogram, PercentilesStayWithinOneBucketOfTheExactOnes) {
  const struct {
    const char* shape;
    std::vector<double> values;
  } cases[] = {
      {"one value", {0.25}},
      {"two far apart", {0.002, 40.0}},
      {"under the first bound", {0.00001, 0.00002, 0.00005}},
      {"uniform 1 ms .. 1 s", [] {
         std::vector<double> v;
         for (int i = 1; i <= 1000; ++i) v.push_back(i / 1000.0);
         return v;
       }()},
      {"a fast mass and a slow tail", [] {
         std::vector<double> v(900, 0.003);
         for (int i = 0; i < 100; ++i) v.push_back(2.0 + i * 0.1);
         return v;
       }()},
      {"the bench's spread", [] {
         std::vector<double> v;
         for (int i = 0; i < 5000; ++i) v.push_back((i % 500) / 1000.0);
         return v;
       }()},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.shape);
    LatencyHistogram h;
    for (double v : c.values) h.Add(LatencyBucket(v), 1);
    EXPECT_EQ(h.count(), static_cast<int64_t>(c.values.size()));
    for (double q : {0.0, 0.5, 0.9, 0.99, 1.0}) {
      const auto [exact, tolerance] = Exact(c.values, q);
      const auto approx = h.Percentile(q);
      ASSERT_TRUE(approx.has_value());
      EXPECT_NEAR(*approx, exact, tolerance + 1e-12) << "q " << q;
    }
  }
  EXPECT_FALSE(LatencyHistogram().Percentile(0.5).has_value());
}

TEST(LatencyHistogram, MergingIsAddingCounts) {
  LatencyHistogram a, b, both;
  for (double v : {0.001, 0.002, 0.5}) {
    a.Add(LatencyBucket(v), 1);
    both.Add(LatencyBucket(v), 1);
  }
  for (double v : {0.003, 7.0}) {
    b.Add(LatencyBucket(v), 2);
    both.Add(LatencyBucket(v), 2);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), 7);
  for (double q : {0.1, 0.5, 0.9}) EXPECT_EQ(a.Percentile(q), both.Percentile(q));
  a.Add(3, 0);
  a.Add(3, -4);
  EXPECT_EQ(a.count(), 7);
}

}  // namespace
}  // namespace cogo::metrics
