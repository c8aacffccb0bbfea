// Admission and retry decisions for one execute message: may this assignment run under its
// policy rule, at this time, with this much of the tenant's day already spent; and after a
// failure, is it retried (when), dead-lettered or failed for good. Pure functions of their
// arguments with time passed in (no clock, no I/O): thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "cogo/policy/assignment.h"
#include "cogo/policy/policy_table.h"

namespace cogo::policy {

// Why an assignment is refused, in the order Admit checks: first the envelope itself, then the
// envelope against the rule, then the clock, then the tenant's spend. Every rejection is
// permanent: the message fails with the reason and is never retried blindly.
enum class RejectReason {
  budget_invalid,           // maxCostUsd not a positive finite number, or maxTokens < 1
  model_not_allowed,        // model not in the rule's allowed_models
  version_not_allowed,      // version not in the rule's allowed_versions
  ttl_over_max,             // ttl longer than the rule's max_ttl
  budget_over_cap,          // maxCostUsd above the rule's max_cost_usd
  tokens_over_cap,          // maxTokens above the rule's max_tokens
  ttl_expired,              // now >= deadline (or ttl <= 0)
  tenant_budget_exhausted,  // committed today + maxCostUsd > daily cap
};

// Stable snake_case name ("ttl_expired", ...) for last_error, audit rows and metric labels.
[[nodiscard]] std::string_view ReasonName(RejectReason reason);

struct TenantSpend {
  // Spent or reserved today: the usage recorded since the start of the tenant's day, plus the
  // maxCostUsd of the hand-offs admitted and not finished yet (the executor's running total).
  double committed_today_usd = 0.0;
  double daily_cap_usd = 0.0;    // PolicyTable::DailyCapUsd(tenant)
};

struct [[nodiscard]] Decision {
  std::optional<RejectReason> reject;  // nullopt: admitted
  std::string detail;                  // one line for last_error / audit; empty when admitted

  [[nodiscard]] bool admitted() const { return !reject.has_value(); }
};

// Judges the assignment; reports the first failing check (order above). Budget amounts within
// kUsdEpsilon of a cap count as at the cap. `deadline`: when the TTL ends, as the bus stored it
// at publish (bus::ClaimedMessage::ttl_deadline_epoch: the TTL rule is the database's alone);
// nullopt for a check of configuration, before anything is issued: the clock is not judged.
[[nodiscard]] Decision Admit(const AssignmentEnvelope& envelope, const PolicyRule& rule,
                             std::optional<TimePoint> deadline, const TenantSpend& spend, TimePoint now);

// How a failure is treated. Transient: worth another attempt (timeout, connection lost, 5xx,
// rate limit). Permanent: the same input fails the same way (policy rejection, 4xx, bad input).
enum class ErrorClass { transient, permanent };

enum class RetryAction {
  retry,        // requeue with retry_at
  dead_letter,  // transient, but attempts are used up: keep it for an operator
  fail,         // permanent: end the message as failed, no retry
};

// Stable snake_case name ("retry", "dead_letter", "fail").
[[nodiscard]] std::string_view ActionName(RetryAction action);

struct [[nodiscard]] RetryDecision {
  RetryAction action = RetryAction::fail;
  TimePoint retry_at;                  // set when action == retry, else equals now
  std::chrono::milliseconds delay{0};  // retry_at - now
};

// After attempt number `attempt` (1-based, the one that just failed): permanent -> fail;
// transient and attempt >= rule.max_attempts -> dead_letter; otherwise retry at
// now + NextBackoff(attempt, rule.backoff, unit_sample). `unit_sample` in [0, 1) picks jitter.
[[nodiscard]] RetryDecision RetryAt(int attempt, ErrorClass error_class, const PolicyRule& rule,
                                    TimePoint now, double unit_sample);

}  // namespace cogo::policy
