#include "cogo/policy/admit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cogo/policy/metering.h"

namespace cogo::policy {
namespace {

std::string Usd(double amount) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", amount);
  return text;
}

Decision Reject(RejectReason reason, std::string detail) {
  return Decision{reason, std::move(detail)};
}

}  // namespace

std::string_view ReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::budget_invalid: return "budget_invalid";
    case RejectReason::model_not_allowed: return "model_not_allowed";
    case RejectReason::version_not_allowed: return "version_not_allowed";
    case RejectReason::ttl_over_max: return "ttl_over_max";
    case RejectReason::budget_over_cap: return "budget_over_cap";
    case RejectReason::tokens_over_cap: return "tokens_over_cap";
    case RejectReason::ttl_expired: return "ttl_expired";
    case RejectReason::tenant_budget_exhausted: return "tenant_budget_exhausted";
  }
  return "unknown";
}

std::string_view ActionName(RetryAction action) {
  switch (action) {
    case RetryAction::retry: return "retry";
    case RetryAction::dead_letter: return "dead_letter";
    case RetryAction::fail: return "fail";
  }
  return "unknown";
}

Decision Admit(const AssignmentEnvelope& envelope, const PolicyRule& rule,
               std::optional<TimePoint> deadline, const TenantSpend& spend, TimePoint now) {
  using R = RejectReason;
  const Budget& budget = envelope.budget;

  if (!std::isfinite(budget.max_cost_usd) || budget.max_cost_usd <= 0.0 || budget.max_tokens < 1) {
    return Reject(R::budget_invalid, "budget needs maxCostUsd > 0 and maxTokens >= 1, got " +
                      Usd(budget.max_cost_usd) + " USD and " + std::to_string(budget.max_tokens));
  }
  if (!rule.AllowsModel(envelope.model)) {
    return Reject(R::model_not_allowed, "model \"" + envelope.model + "\" is not allowed by " + rule.name);
  }
  if (!rule.AllowsVersion(envelope.version)) {
    return Reject(R::version_not_allowed, "version \"" + envelope.version + "\" is not allowed by " + rule.name);
  }
  if (envelope.ttl > rule.max_ttl) {
    return Reject(R::ttl_over_max, "ttl_ms " + std::to_string(envelope.ttl.count()) + " exceeds max " +
                      std::to_string(rule.max_ttl.count()) + " of " + rule.name);
  }
  if (budget.max_cost_usd > rule.max_cost_usd + kUsdEpsilon) {
    return Reject(R::budget_over_cap, "maxCostUsd " + Usd(budget.max_cost_usd) + " exceeds cap " +
                      Usd(rule.max_cost_usd) + " of " + rule.name);
  }
  if (budget.max_tokens > rule.max_tokens) {
    return Reject(R::tokens_over_cap, "maxTokens " + std::to_string(budget.max_tokens) + " exceeds cap " +
                      std::to_string(rule.max_tokens) + " of " + rule.name);
  }
  if (envelope.ttl <= std::chrono::milliseconds(0)) {
    return Reject(R::ttl_expired, "ttl_ms " + std::to_string(envelope.ttl.count()) + " leaves no time to run");
  }
  if (deadline && now >= *deadline) {
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(now - *deadline);
    return Reject(R::ttl_expired, "ttl of " + std::to_string(envelope.ttl.count()) + " ms ended " +
                      std::to_string(late.count()) + " ms ago");
  }
  if (spend.committed_today_usd + budget.max_cost_usd > spend.daily_cap_usd + kUsdEpsilon) {
    return Reject(R::tenant_budget_exhausted, "spent or reserved today " + Usd(spend.committed_today_usd) + " + maxCostUsd " +
                      Usd(budget.max_cost_usd) + " exceeds daily cap " + Usd(spend.daily_cap_usd) +
                      " USD");
  }
  return Decision{std::nullopt, {}};
}

RetryDecision RetryAt(int attempt, ErrorClass error_class, const PolicyRule& rule, TimePoint now,
                      double unit_sample) {
  if (error_class == ErrorClass::permanent) return RetryDecision{RetryAction::fail, now, {}};
  if (attempt >= rule.max_attempts) return RetryDecision{RetryAction::dead_letter, now, {}};
  const std::chrono::milliseconds delay = NextBackoff(attempt, rule.backoff, unit_sample);
  return RetryDecision{RetryAction::retry, now + delay, delay};
}

}  // namespace cogo::policy
