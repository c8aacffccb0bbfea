#include "cogo/policy/metering.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cogo::policy {

std::optional<double> CostUsd(const PriceTable& prices, std::string_view model,
                              int64_t input_tokens, int64_t output_tokens) {
  const auto it = prices.find(model);
  if (it == prices.end()) return std::nullopt;
  const auto in = static_cast<double>(std::max<int64_t>(input_tokens, 0));
  const auto out = static_cast<double>(std::max<int64_t>(output_tokens, 0));
  return (in * it->second.usd_per_1k_input + out * it->second.usd_per_1k_output) / 1000.0;
}

std::optional<Usage> PricedUsage(const PriceTable& prices, std::string_view model,
                                 int64_t input_tokens, int64_t output_tokens) {
  const std::optional<double> cost = CostUsd(prices, model, input_tokens, output_tokens);
  if (!cost) return std::nullopt;
  return Usage{std::max<int64_t>(input_tokens, 0), std::max<int64_t>(output_tokens, 0), *cost};
}

std::string_view VerdictName(MeterVerdict verdict) {
  switch (verdict) {
    case MeterVerdict::within: return "within";
    case MeterVerdict::tokens_exceeded: return "tokens_exceeded";
    case MeterVerdict::cost_exceeded: return "cost_exceeded";
  }
  return "unknown";
}

MeterVerdict UsageMeter::Add(const Usage& usage) {
  // A report can never refund budget: negative parts count as zero. A NaN cost is a provider
  // bug; it counts as infinite so the meter fails closed instead of never tripping.
  const double cost = std::isnan(usage.cost_usd) ? std::numeric_limits<double>::infinity()
                                                 : std::max(usage.cost_usd, 0.0);
  total_ += Usage{std::max<int64_t>(usage.input_tokens, 0),
                  std::max<int64_t>(usage.output_tokens, 0), cost};
  return verdict();
}

MeterVerdict UsageMeter::verdict() const {
  if (total_.cost_usd > budget_.max_cost_usd + kUsdEpsilon) return MeterVerdict::cost_exceeded;
  if (total_.total_tokens() > budget_.max_tokens) return MeterVerdict::tokens_exceeded;
  return MeterVerdict::within;
}

int64_t UsageMeter::remaining_tokens() const {
  return std::max<int64_t>(budget_.max_tokens - total_.total_tokens(), 0);
}

double UsageMeter::remaining_cost_usd() const {
  return std::max(budget_.max_cost_usd - total_.cost_usd, 0.0);
}

}  // namespace cogo::policy
