#include "cogo/metrics/window.h"

#include <gtest/gtest.h>

#include <optional>

namespace cogo::metrics {
namespace {

using std::chrono::seconds;

TEST(MetricsWindow, ParsesDurationsInRangeAndRefusesTheRest) {
  const struct {
    std::optional<std::string_view> text;
    int64_t seconds;  // 0: refused
  } cases[] = {
      {std::nullopt, 86400},  // absent: the fallback
      {"15m", 900},    {"1h", 3600},  {"24h", 86400},   {"7d", 604800}, {"30d", 2592000},
      {"1m", 60},      {"90s", 90},   {"120000", 120},  // a bare number is milliseconds
      {"59s", 0},      {"31d", 0},    {"0", 0},         {"", 0},        {"1.5h", 0},
      {"24 h", 0},     {"-1h", 0},    {"1w", 0},        {"1500ms", 0},  {"61500ms", 0},
      {"h", 0},        {"24h;", 0},   {"99999999999999999999d", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text ? std::string(*c.text) : "(absent)");
    const auto span = ParseWindow(c.text, seconds(86400));
    EXPECT_EQ(span.ok(), c.seconds != 0) << span.error;
    if (c.seconds != 0) {
      EXPECT_EQ(span.value.count(), c.seconds);
    } else {
      EXPECT_FALSE(span.error.empty());
    }
  }
}

TEST(MetricsWindow, BucketsAreFixedWidthsThatFitTheWindow) {
  const struct {
    std::optional<std::string_view> text;
    int64_t window;
    int64_t bucket;  // 0: refused
  } cases[] = {
      // Absent: the narrowest width giving at most 60 points.
      {std::nullopt, 900, 60},        {std::nullopt, 3600, 60},      {std::nullopt, 86400, 3600},
      {std::nullopt, 604800, 21600},  {std::nullopt, 2592000, 86400}, {std::nullopt, 60, 60},
      // Given: one of the fixed widths, no wider than the window, at most 500 points.
      {"1m", 3600, 60},   {"5m", 86400, 300},  {"1h", 86400, 3600}, {"1d", 604800, 86400},
      {"6h", 2592000, 21600},
      {"2m", 3600, 0},    {"1h", 900, 0},      {"1m", 604800, 0},   {"x", 3600, 0},
      {"", 3600, 0},      {"60s", 3600, 60},   {"1d", 86400, 86400},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE((c.text ? std::string(*c.text) : "(absent)") + " in " + std::to_string(c.window));
    const auto span = ParseBucket(c.text, seconds(c.window));
    EXPECT_EQ(span.ok(), c.bucket != 0) << span.error;
    if (c.bucket != 0) {
      EXPECT_EQ(span.value.count(), c.bucket);
    }
  }
}

TEST(MetricsWindow, FormatsTheShortestForm) {
  EXPECT_EQ(FormatSpan(seconds(900)), "15m");
  EXPECT_EQ(FormatSpan(seconds(86400)), "1d");
  EXPECT_EQ(FormatSpan(seconds(90)), "90s");
}

}  // namespace
}  // namespace cogo::metrics
