// Usage accounting: what a model call costs (a price table per model) and whether a message's
// running usage still fits its assignment budget (UsageMeter). Pure values: PriceTable and
// CostUsd are thread-safe; one UsageMeter belongs to one message and is not synchronised (a
// worker guard that lets a handler report from several threads wraps it in its own mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "cogo/policy/assignment.h"
#include "cogo/policy/usage.h"

namespace cogo::policy {

// USD amounts are doubles; comparisons against caps forgive this much rounding (a nano-dollar)
// so that 0.1 + 0.2 spent against a 0.3 cap is within it.
inline constexpr double kUsdEpsilon = 1e-9;

struct ModelPrice {
  double usd_per_1k_input = 0.0;   // per 1,000 prompt tokens
  double usd_per_1k_output = 0.0;  // per 1,000 completion tokens
};

// Model name -> price. Free local models are listed with zero prices.
using PriceTable = std::map<std::string, ModelPrice, std::less<>>;

// Cost of a call. No fallback price: a model missing from the table returns nullopt, because a
// guess would make USD budgets meaningless; callers fail the message (`model_not_priced`).
// Negative token counts are treated as zero.
[[nodiscard]] std::optional<double> CostUsd(const PriceTable& prices, std::string_view model,
                                            int64_t input_tokens, int64_t output_tokens);

// Usage with cost_usd filled in from the table; nullopt for an unpriced model.
[[nodiscard]] std::optional<Usage> PricedUsage(const PriceTable& prices, std::string_view model,
                                               int64_t input_tokens, int64_t output_tokens);

enum class MeterVerdict {
  within,           // total tokens <= maxTokens and total cost <= maxCostUsd
  tokens_exceeded,  // total tokens > maxTokens
  cost_exceeded,    // total cost > maxCostUsd (reported first when both are crossed)
};

// Stable snake_case name of a verdict, for logs.
[[nodiscard]] std::string_view VerdictName(MeterVerdict verdict);

// Running usage of one message against its budget. Reaching a limit exactly is within budget;
// going past it is not. Totals only grow (negative reports count as zero), so once exceeded
// the verdict stays exceeded; the guard stops the handler and fails with `budget_exceeded`.
class UsageMeter {
 public:
  explicit UsageMeter(Budget budget) : budget_(budget) {}

  // Adds one report (a call's usage, cost already priced) and judges the new total.
  [[nodiscard]] MeterVerdict Add(const Usage& usage);

  [[nodiscard]] MeterVerdict verdict() const;
  [[nodiscard]] const Usage& total() const { return total_; }  // what was actually spent
  [[nodiscard]] const Budget& budget() const { return budget_; }
  // What is left before a limit is crossed, never negative: a handler can cap its next call.
  [[nodiscard]] int64_t remaining_tokens() const;
  [[nodiscard]] double remaining_cost_usd() const;

 private:
  Budget budget_;
  Usage total_;
};

}  // namespace cogo::policy
