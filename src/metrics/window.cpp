#include "cogo/metrics/window.h"

#include <array>

#include "cogo/ops/duration.h"

namespace cogo::metrics {
namespace {

using std::chrono::seconds;

constexpr std::array<seconds, 6> kBuckets = {seconds(60), seconds(300), seconds(900), seconds(3600),
                                              seconds(6 * 3600), seconds(24 * 3600)};
constexpr int kDefaultPoints = 60;

}  // namespace

Span ParseWindow(std::optional<std::string_view> text, seconds fallback) {
  if (!text) return {fallback, {}};
  const auto parsed = ops::ParseDuration(*text);
  if (!parsed || parsed->count() % 1000 != 0) {
    return {seconds(0), "window must be a duration such as 15m, 1h, 24h or 7d"};
  }
  const auto value = std::chrono::duration_cast<seconds>(*parsed);
  if (value < kMinWindow || value > kMaxWindow) {
    return {seconds(0), "window must be between " + FormatSpan(kMinWindow) + " and " + FormatSpan(kMaxWindow)};
  }
  return {value, {}};
}

Span ParseBucket(std::optional<std::string_view> text, seconds window) {
  if (!text) {
    for (const auto width : kBuckets) {
      if (window / width <= kDefaultPoints) return {width, {}};
    }
    return {kBuckets.back(), {}};
  }
  const auto parsed = ops::ParseDuration(*text);
  seconds width{0};
  for (const auto allowed : kBuckets) {
    if (parsed && *parsed == allowed) width = allowed;
  }
  if (width.count() == 0) return {seconds(0), "bucket must be one of 1m, 5m, 15m, 1h, 6h, 1d"};
  if (width > window) return {seconds(0), "bucket must not be wider than the window"};
  if (window / width > kMaxBuckets) {
    return {seconds(0), "bucket too narrow for the window: at most " + std::to_string(kMaxBuckets) + " points"};
  }
  return {width, {}};
}

std::string FormatSpan(seconds span) {
  return ops::FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(span));
}

}  // namespace cogo::metrics
