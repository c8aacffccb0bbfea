#include "cogo/ops/duration.h"

#include <gtest/gtest.h>

namespace cogo::ops {
namespace {

using std::chrono::milliseconds;

TEST(Duration, ParsesUnitsAndRefusesEverythingElse) {
  const struct {
    const char* text;
    std::optional<int64_t> ms;
  } cases[] = {
      {"250ms", 250},       {"250", 250},          {"90s", 90000},   {"15m", 900000},
      {"36h", 129600000},   {"7d", 604800000},     {"0s", 0},        {"", std::nullopt},
      {"ms", std::nullopt}, {"-5s", std::nullopt}, {"1.5h", std::nullopt},
      {"5w", std::nullopt}, {"5 s", std::nullopt}, {"+5s", std::nullopt},
      {"99999999999999999999d", std::nullopt},     {"9223372036854775807d", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto parsed = ParseDuration(c.text);
    ASSERT_EQ(parsed.has_value(), c.ms.has_value());
    if (c.ms) {
      EXPECT_EQ(parsed->count(), *c.ms);
    }
  }
}

TEST(Duration, FormatsTheShortestExactForm) {
  EXPECT_EQ(FormatDuration(milliseconds(604800000)), "7d");
  EXPECT_EQ(FormatDuration(milliseconds(90000)), "90s");
  EXPECT_EQ(FormatDuration(milliseconds(5400000)), "90m");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0ms");
  for (int64_t ms : {1LL, 999LL, 60000LL, 3600000LL, 86400000LL * 400}) {
    EXPECT_EQ(ParseDuration(FormatDuration(milliseconds(ms))), milliseconds(ms));
  }
}

}  // namespace
}  // namespace cogo::ops
