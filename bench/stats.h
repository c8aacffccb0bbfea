// Small statistics the benchmarks share: nearest-rank percentiles, medians, the machine's load
// and a latency distribution as JSON and as text. Header-only; pure functions but LoadAverage.
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cogo::bench {

// The 1-minute load average: the machine is shared, so each run records how busy it was.
inline double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile of a sorted vector.
inline double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// {count, p50_ms, p90_ms, p99_ms, max_ms} of a sorted vector of milliseconds.
inline nlohmann::json Distribution(const std::vector<double>& ms) {
  return {{"count", ms.size()},
          {"p50_ms", Percentile(ms, 50)},
          {"p90_ms", Percentile(ms, 90)},
          {"p99_ms", Percentile(ms, 99)},
          {"max_ms", ms.empty() ? 0 : ms.back()}};
}

inline std::string DistributionText(const nlohmann::json& d) {
  return fmt::format("p50 {:.2f} / p90 {:.2f} / p99 {:.2f} / max {:.2f} ms", d["p50_ms"].get<double>(),
                     d["p90_ms"].get<double>(), d["p99_ms"].get<double>(), d["max_ms"].get<double>());
}

}  // namespace cogo::bench
