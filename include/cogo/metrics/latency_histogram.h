// The latency rollup's histogram: log-scale buckets of seconds, 8 per doubling from 100 µs, as
// sql/020's cogo_latency_bucket() assigns them (bucket 0: under 100 µs; k >= 1: [1e-4 *
// 2^((k-1)/8), 1e-4 * 2^(k/8)); kLastLatencyBucket: the rest). Windows longer than the rolled-up
// hours they cover read their percentiles from these (docs/metrics.md "Fast on a large bus").
// A value type: thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>

namespace cogo::metrics {

inline constexpr int kLastLatencyBucket = 300;

// The bucket of `seconds`, as cogo_latency_bucket() computes it.
[[nodiscard]] int LatencyBucket(double seconds);

// [low, high) seconds of a bucket (bucket 0 starts at 0; the last one is as wide as the others).
[[nodiscard]] std::pair<double, double> LatencyBucketBounds(int bucket);

class LatencyHistogram {
 public:
  void Add(int bucket, int64_t count);
  void Merge(const LatencyHistogram& other);
  [[nodiscard]] int64_t count() const { return count_; }

  // The q-quantile (0..1) as percentile_cont defines it (between the sorted values of ranks
  // floor and ceil of q * (n - 1)), the values of a bucket taken as spread evenly across it: off
  // by at most the width of those values' buckets (9% of the value). nullopt when empty.
  [[nodiscard]] std::optional<double> Percentile(double q) const;

 private:
  [[nodiscard]] double ValueAtRank(int64_t rank) const;  // 0-based, < count()

  std::map<int, int64_t> buckets_;
  int64_t count_ = 0;
};

}  // namespace cogo::metrics
