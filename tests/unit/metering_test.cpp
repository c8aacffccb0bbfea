#include "cogo/policy/metering.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace cogo::policy {
namespace {

const PriceTable kPrices = {
    {"gpt-4o-mini", {0.15, 0.60}},
    {"local", {0.0, 0.0}},
};

struct CostCase {
  const char* model;
  int64_t input_tokens;
  int64_t output_tokens;
  std::optional<double> expected;
};

TEST(CostUsd, PricesPerThousandTokensAndRefusesUnknownModels) {
  const CostCase cases[] = {
      {"gpt-4o-mini", 1000, 0, 0.15},
      {"gpt-4o-mini", 0, 1000, 0.60},
      {"gpt-4o-mini", 2000, 500, 0.30 + 0.30},
      {"gpt-4o-mini", 1, 1, 0.00075},
      {"gpt-4o-mini", -100, 1000, 0.60},  // negative counts price as zero
      {"local", 1000000, 1000000, 0.0},
      {"gpt-4o", 10, 10, std::nullopt},  // not in the table: no fallback price
      {"", 10, 10, std::nullopt},
  };
  for (const auto& c : cases) {
    const std::optional<double> cost = CostUsd(kPrices, c.model, c.input_tokens, c.output_tokens);
    ASSERT_EQ(cost.has_value(), c.expected.has_value()) << c.model;
    if (cost) {
      EXPECT_NEAR(*cost, *c.expected, 1e-12) << c.model << " " << c.input_tokens;
    }
  }
}

TEST(CostUsd, PricedUsageFillsTheCost) {
  const std::optional<Usage> usage = PricedUsage(kPrices, "gpt-4o-mini", 2000, 1000);
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->input_tokens, 2000);
  EXPECT_EQ(usage->output_tokens, 1000);
  EXPECT_NEAR(usage->cost_usd, 0.90, 1e-12);
  EXPECT_FALSE(PricedUsage(kPrices, "unknown", 1, 1).has_value());
}

struct MeterStep {
  Usage report;
  MeterVerdict expected;
};

struct MeterCase {
  const char* name;
  Budget budget;
  std::vector<MeterStep> steps;
};

TEST(UsageMeter, CrossesEachCapExactlyPastTheBoundary) {
  using V = MeterVerdict;
  const double kNaN = std::numeric_limits<double>::quiet_NaN();
  const MeterCase cases[] = {
      {"tokens up to and past the cap",
       {1.0, 100},
       {{{30, 30, 0.0}, V::within},
        {{20, 20, 0.0}, V::within},  // exactly 100: within
        {{0, 1, 0.0}, V::tokens_exceeded},
        {{0, 0, 0.0}, V::tokens_exceeded}}},  // sticky
      {"one report lands past the cap", {1.0, 100}, {{{101, 0, 0.0}, V::tokens_exceeded}}},
      {"cost up to and past the cap",
       {1.0, 1000000},
       {{{0, 0, 0.4}, V::within},
        {{0, 0, 0.6}, V::within},  // exactly 1.0: within
        {{0, 0, 0.000001}, V::cost_exceeded}}},
      {"float noise at the cap is within",
       {0.3, 1000},
       {{{0, 0, 0.1}, V::within}, {{0, 0, 0.2}, V::within}}},  // 0.1 + 0.2 > 0.3 by 5e-17
      {"both crossed reports cost", {1.0, 10}, {{{20, 0, 2.0}, V::cost_exceeded}}},
      {"tokens crossed first, then cost",
       {1.0, 10},
       {{{11, 0, 0.5}, V::tokens_exceeded}, {{0, 0, 0.6}, V::cost_exceeded}}},
      {"negative reports refund nothing",
       {1.0, 100},
       {{{100, 0, 1.0}, V::within},
        {{-50, -50, -1.0}, V::within},
        {{1, 0, 0.0}, V::tokens_exceeded}}},
      {"NaN cost fails closed", {1.0, 100}, {{{1, 1, kNaN}, V::cost_exceeded}}},
  };
  for (const auto& c : cases) {
    UsageMeter meter(c.budget);
    EXPECT_EQ(meter.verdict(), V::within) << c.name;
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const MeterVerdict verdict = meter.Add(c.steps[i].report);
      EXPECT_EQ(verdict, c.steps[i].expected)
          << c.name << " step " << i << ": got " << VerdictName(verdict);
      EXPECT_EQ(meter.verdict(), verdict) << c.name << " step " << i;
    }
  }
}

TEST(UsageMeter, KeepsTheRunningTotalAndWhatRemains) {
  UsageMeter meter(Budget{0.50, 1000});
  EXPECT_EQ(meter.remaining_tokens(), 1000);
  EXPECT_DOUBLE_EQ(meter.remaining_cost_usd(), 0.50);
  (void)meter.Add({300, 200, 0.125});
  (void)meter.Add({100, 0, 0.125});
  EXPECT_EQ(meter.total().input_tokens, 400);
  EXPECT_EQ(meter.total().output_tokens, 200);
  EXPECT_DOUBLE_EQ(meter.total().cost_usd, 0.25);
  EXPECT_EQ(meter.remaining_tokens(), 400);
  EXPECT_DOUBLE_EQ(meter.remaining_cost_usd(), 0.25);
  EXPECT_EQ(meter.Add({500, 0, 0.5}), MeterVerdict::cost_exceeded);
  EXPECT_EQ(meter.total().total_tokens(), 1100);  // what was actually spent, past the budget
  EXPECT_EQ(meter.remaining_tokens(), 0);         // never negative
  EXPECT_DOUBLE_EQ(meter.remaining_cost_usd(), 0.0);
}

TEST(UsageMeter, VerdictNamesAreStable) {
  EXPECT_EQ(VerdictName(MeterVerdict::within), "within");
  EXPECT_EQ(VerdictName(MeterVerdict::tokens_exceeded), "tokens_exceeded");
  EXPECT_EQ(VerdictName(MeterVerdict::cost_exceeded), "cost_exceeded");
}

}  // namespace
}  // namespace cogo::policy
