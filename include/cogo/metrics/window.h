// The time spans of the metrics API: a query's window ("?window=24h": how far back it looks) and a
// trend's bucket ("?bucket=1h": the width of one point). Parsed from query parameters into a
// value or a reason the API answers 400 with. Pure functions: thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace cogo::metrics {

inline constexpr std::chrono::seconds kMinWindow{60};                // 1m
inline constexpr std::chrono::seconds kMaxWindow{30 * 24 * 3600};    // 30d
inline constexpr int kMaxBuckets = 500;  // points in one trend, so a response stays small

// A parsed span, or why the text is not one (`error` is a sentence for the 400 body).
struct Span {
  std::chrono::seconds value{0};
  std::string error;
  [[nodiscard]] bool ok() const { return error.empty(); }
};

// A duration as ops::ParseDuration reads it ("15m", "1h", "24h", "7d"), a whole number of
// seconds in [kMinWindow, kMaxWindow]; `fallback` when the parameter is absent.
[[nodiscard]] Span ParseWindow(std::optional<std::string_view> text, std::chrono::seconds fallback);

// One of 1m, 5m, 15m, 1h, 6h, 1d (fixed widths, so buckets line up across queries), no wider
// than `window` and at most kMaxBuckets of them in it. Absent: the narrowest width that gives
// at most 60 points (15m -> 1m, 1h -> 1m, 24h -> 1h, 7d -> 6h).
[[nodiscard]] Span ParseBucket(std::optional<std::string_view> text, std::chrono::seconds window);

// "15m", "24h", "7d": the shortest exact form, as labels and responses show a span.
[[nodiscard]] std::string FormatSpan(std::chrono::seconds span);

}  // namespace cogo::metrics
