#include "cogo/metrics/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace cogo::metrics {
namespace {

constexpr double kFirstBound = 1e-4;           // seconds: where bucket 1 starts
constexpr double kBucketsPerDoubling = 8.0;
constexpr double kScale = 11.541560327111707;  // kBucketsPerDoubling / ln 2, as in sql/020

}  // namespace

int LatencyBucket(double seconds) {
  if (!(seconds >= kFirstBound)) return 0;  // NaN too
  const double b = 1.0 + std::floor(std::log(seconds * 10000.0) * kScale);
  return static_cast<int>(std::min(b, static_cast<double>(kLastLatencyBucket)));
}

std::pair<double, double> LatencyBucketBounds(int bucket) {
  if (bucket <= 0) return {0.0, kFirstBound};
  const int k = std::min(bucket, kLastLatencyBucket);
  return {kFirstBound * std::exp2((k - 1) / kBucketsPerDoubling), kFirstBound * std::exp2(k / kBucketsPerDoubling)};
}

void LatencyHistogram::Add(int bucket, int64_t count) {
  if (count <= 0) return;
  buckets_[std::clamp(bucket, 0, kLastLatencyBucket)] += count;
  count_ += count;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (const auto& [bucket, count] : other.buckets_) Add(bucket, count);
}

double LatencyHistogram::ValueAtRank(int64_t rank) const {
  int64_t before = 0;
  for (const auto& [bucket, count] : buckets_) {
    if (rank < before + count) {
      const auto [low, high] = LatencyBucketBounds(bucket);
      // The i-th of c values sits in the middle of the i-th of c equal slices of its bucket.
      return low + (high - low) * (static_cast<double>(rank - before) + 0.5) / static_cast<double>(count);
    }
    before += count;
  }
  return LatencyBucketBounds(buckets_.rbegin()->first).second;
}

std::optional<double> LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return std::nullopt;
  // percentile_cont: between the values of ranks floor(pos) and ceil(pos), linearly.
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(count_ - 1);
  const auto lo = static_cast<int64_t>(std::floor(pos));
  const auto hi = static_cast<int64_t>(std::ceil(pos));
  const double low = ValueAtRank(lo);
  return low + (ValueAtRank(hi) - low) * (pos - static_cast<double>(lo));
}

}  // namespace cogo::metrics
