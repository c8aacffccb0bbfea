#include "cogo/policy/admit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

namespace cogo::policy {
namespace {

using std::chrono::milliseconds;
using R = RejectReason;

const TimePoint kCreated = TimePoint(milliseconds(1700000000000));

// One admission question; each case edits a copy of the baseline, which is admitted.
struct Scenario {
  AssignmentEnvelope envelope{"planner",
                              "1.4.0",
                              "gpt-4o",
                              {0.50, 4000},
                              milliseconds(60000),
                              std::nullopt,
                              Target{"gateway", "chat"}};
  PolicyRule rule = [] {
    PolicyRule r;
    r.name = "agent:planner";
    r.allowed_models = {"gpt-4o", "gpt-4o-mini"};
    r.allowed_versions = {"1.4.0", "1.5.0"};
    r.max_cost_usd = 1.00;
    r.max_tokens = 8000;
    r.default_ttl = milliseconds(30000);
    r.max_ttl = milliseconds(120000);
    r.max_attempts = 5;
    return r;
  }();
  std::optional<TimePoint> deadline = kCreated + milliseconds(60000);  // as the bus stored it
  TenantSpend spend{10.0, 20.0};
  TimePoint now = kCreated + milliseconds(1000);

  [[nodiscard]] Decision Run() const { return Admit(envelope, rule, deadline, spend, now); }
};

struct AdmitCase {
  const char* name;
  std::function<void(Scenario&)> edit;
  std::optional<RejectReason> expected;  // nullopt: admitted
};

TEST(Admit, EveryReasonAndItsBoundary) {
  const double kNaN = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  const AdmitCase cases[] = {
      {"baseline", [](Scenario&) {}, std::nullopt},
      // budget_invalid: the envelope's own budget is not a budget.
      {"cost zero", [](Scenario& s) { s.envelope.budget.max_cost_usd = 0.0; }, R::budget_invalid},
      {"cost negative", [](Scenario& s) { s.envelope.budget.max_cost_usd = -1.0; },
       R::budget_invalid},
      {"cost NaN", [&](Scenario& s) { s.envelope.budget.max_cost_usd = kNaN; }, R::budget_invalid},
      {"cost infinite", [&](Scenario& s) { s.envelope.budget.max_cost_usd = kInf; },
       R::budget_invalid},
      {"tokens zero", [](Scenario& s) { s.envelope.budget.max_tokens = 0; }, R::budget_invalid},
      {"tokens negative", [](Scenario& s) { s.envelope.budget.max_tokens = -10; },
       R::budget_invalid},
      // model / version allow-lists, exact match or "*".
      {"model not listed", [](Scenario& s) { s.envelope.model = "gpt-5"; }, R::model_not_allowed},
      {"model case differs", [](Scenario& s) { s.envelope.model = "GPT-4o"; },
       R::model_not_allowed},
      {"model wildcard",
       [](Scenario& s) {
         s.envelope.model = "x";
         s.rule.allowed_models = {"*"};
       },
       std::nullopt},
      {"version not listed", [](Scenario& s) { s.envelope.version = "2.0.0"; },
       R::version_not_allowed},
      {"version prefix only", [](Scenario& s) { s.envelope.version = "1.4"; },
       R::version_not_allowed},
      {"version wildcard",
       [](Scenario& s) {
         s.envelope.version = "9";
         s.rule.allowed_versions = {"*"};
       },
       std::nullopt},
      // ttl_over_max: equal is fine.
      {"ttl at max", [](Scenario& s) { s.envelope.ttl = milliseconds(120000); }, std::nullopt},
      {"ttl over max", [](Scenario& s) { s.envelope.ttl = milliseconds(120001); }, R::ttl_over_max},
      // budget_over_cap / tokens_over_cap: equal is fine, rounding noise is forgiven.
      {"cost at cap", [](Scenario& s) { s.envelope.budget.max_cost_usd = 1.00; }, std::nullopt},
      {"cost at cap + 1e-12", [](Scenario& s) { s.envelope.budget.max_cost_usd = 1.0 + 1e-12; },
       std::nullopt},
      {"cost over cap", [](Scenario& s) { s.envelope.budget.max_cost_usd = 1.01; },
       R::budget_over_cap},
      {"tokens at cap", [](Scenario& s) { s.envelope.budget.max_tokens = 8000; }, std::nullopt},
      {"tokens over cap", [](Scenario& s) { s.envelope.budget.max_tokens = 8001; },
       R::tokens_over_cap},
      // ttl_expired: from the stored deadline on (the database's TTL rule made it).
      {"1 ms before deadline", [](Scenario& s) { s.now = kCreated + milliseconds(59999); },
       std::nullopt},
      {"at deadline", [](Scenario& s) { s.now = kCreated + milliseconds(60000); }, R::ttl_expired},
      {"long after", [](Scenario& s) { s.now = kCreated + std::chrono::hours(5); }, R::ttl_expired},
      {"the stored deadline, not created_at + ttl",
       [](Scenario& s) {
         s.deadline = kCreated + milliseconds(500);
         s.now = kCreated + milliseconds(500);
       },
       R::ttl_expired},
      {"no deadline: a check of configuration", [](Scenario& s) {
         s.deadline = std::nullopt;
         s.now = kCreated + std::chrono::hours(5);
       },
       std::nullopt},
      {"ttl zero", [](Scenario& s) { s.envelope.ttl = milliseconds(0); }, R::ttl_expired},
      {"ttl negative", [](Scenario& s) { s.envelope.ttl = milliseconds(-5); }, R::ttl_expired},
      {"clock behind created_at", [](Scenario& s) { s.now = kCreated - milliseconds(10); },
       std::nullopt},
      // tenant_budget_exhausted: spent + maxCostUsd must stay within the daily cap.
      {"spend reaches cap",
       [](Scenario& s) {
         s.spend = {19.5, 20.0};
       },
       std::nullopt},
      {"spend passes cap",
       [](Scenario& s) {
         s.spend = {19.51, 20.0};
       },
       R::tenant_budget_exhausted},
      {"already over cap",
       [](Scenario& s) {
         s.spend = {25.0, 20.0};
       },
       R::tenant_budget_exhausted},
      {"zero cap",
       [](Scenario& s) {
         s.spend = {0.0, 0.0};
       },
       R::tenant_budget_exhausted},
      {"float noise at cap",
       [](Scenario& s) {
         s.envelope.budget.max_cost_usd = 0.2;
         s.spend = {0.1, 0.3};  // 0.1 + 0.2 > 0.3 in binary floating point
       },
       std::nullopt},
      // Order: the first failing check is the one reported.
      {"invalid budget before model",
       [](Scenario& s) {
         s.envelope.budget.max_tokens = 0;
         s.envelope.model = "x";
       },
       R::budget_invalid},
      {"model before version",
       [](Scenario& s) {
         s.envelope.model = "x";
         s.envelope.version = "x";
       },
       R::model_not_allowed},
      {"version before ttl max",
       [](Scenario& s) {
         s.envelope.version = "x";
         s.envelope.ttl = milliseconds(999999);
       },
       R::version_not_allowed},
      {"ttl max before cost cap",
       [](Scenario& s) {
         s.envelope.ttl = milliseconds(999999);
         s.envelope.budget.max_cost_usd = 5;
       },
       R::ttl_over_max},
      {"cost cap before token cap",
       [](Scenario& s) {
         s.envelope.budget = {5.0, 99999};
       },
       R::budget_over_cap},
      {"token cap before expiry",
       [](Scenario& s) {
         s.envelope.budget.max_tokens = 99999;
         s.now += std::chrono::hours(1);
       },
       R::tokens_over_cap},
      {"expiry before tenant spend",
       [](Scenario& s) {
         s.now += std::chrono::hours(1);
         s.spend = {20.0, 20.0};
       },
       R::ttl_expired},
  };
  for (const auto& c : cases) {
    Scenario scenario;
    c.edit(scenario);
    const Decision decision = scenario.Run();
    if (c.expected) {
      ASSERT_FALSE(decision.admitted()) << c.name;
      EXPECT_EQ(*decision.reject, *c.expected)
          << c.name << ": got " << ReasonName(*decision.reject) << " (" << decision.detail << ")";
      EXPECT_FALSE(decision.detail.empty()) << c.name;
    } else {
      EXPECT_TRUE(decision.admitted())
          << c.name << ": got " << ReasonName(*decision.reject) << " (" << decision.detail << ")";
      EXPECT_TRUE(decision.detail.empty()) << c.name;
    }
  }
}

TEST(Admit, DetailNamesTheRuleAndValues) {
  Scenario s;
  s.envelope.model = "gpt-5";
  EXPECT_EQ(s.Run().detail, "model \"gpt-5\" is not allowed by agent:planner");
  s = Scenario{};
  s.spend = {19.75, 20.0};
  EXPECT_EQ(s.Run().detail, "spent or reserved today 19.75 + maxCostUsd 0.5 exceeds daily cap 20 USD");
}

TEST(Admit, ReasonNamesAreStable) {
  const std::pair<RejectReason, const char*> names[] = {
      {R::budget_invalid, "budget_invalid"},
      {R::model_not_allowed, "model_not_allowed"},
      {R::version_not_allowed, "version_not_allowed"},
      {R::ttl_over_max, "ttl_over_max"},
      {R::budget_over_cap, "budget_over_cap"},
      {R::tokens_over_cap, "tokens_over_cap"},
      {R::ttl_expired, "ttl_expired"},
      {R::tenant_budget_exhausted, "tenant_budget_exhausted"},
  };
  for (const auto& [reason, name] : names) EXPECT_EQ(ReasonName(reason), name);
  EXPECT_EQ(ActionName(RetryAction::retry), "retry");
  EXPECT_EQ(ActionName(RetryAction::dead_letter), "dead_letter");
  EXPECT_EQ(ActionName(RetryAction::fail), "fail");
}

struct RetryCase {
  int attempt;
  ErrorClass error_class;
  double sample;
  RetryAction action;
  int64_t delay_ms;
};

TEST(RetryAt, BackoffSequenceThenDeadLetter) {
  PolicyRule rule = Scenario{}.rule;
  rule.max_attempts = 7;
  rule.backoff = {milliseconds(100), milliseconds(1000), 2.0, 0.2};
  const TimePoint now = kCreated;
  using A = RetryAction;
  constexpr auto T = ErrorClass::transient;
  constexpr auto P = ErrorClass::permanent;
  const RetryCase cases[] = {
      {1, T, 0.5, A::retry, 100},
      {2, T, 0.5, A::retry, 200},
      {3, T, 0.5, A::retry, 400},
      {4, T, 0.5, A::retry, 800},
      {5, T, 0.5, A::retry, 1000},  // capped
      {6, T, 0.5, A::retry, 1000},
      {7, T, 0.5, A::dead_letter, 0},  // the attempt numbered max_attempts was the last
      {8, T, 0.5, A::dead_letter, 0},
      {2, T, 0.0, A::retry, 160},
      {2, T, 0.999, A::retry, 239},   // jitter +/- 20 %
      {6, T, 0.999, A::retry, 1000},  // never past the cap
      {1, P, 0.5, A::fail, 0},
      {7, P, 0.5, A::fail, 0},  // permanent: never retried
  };
  for (const auto& c : cases) {
    const RetryDecision decision = RetryAt(c.attempt, c.error_class, rule, now, c.sample);
    EXPECT_EQ(decision.action, c.action)
        << "attempt " << c.attempt << " got " << ActionName(decision.action);
    EXPECT_EQ(decision.delay, milliseconds(c.delay_ms)) << "attempt " << c.attempt;
    EXPECT_EQ(decision.retry_at, now + milliseconds(c.delay_ms)) << "attempt " << c.attempt;
  }
}

TEST(RetryAt, SingleAttemptDeadLettersTheFirstTransientFailure) {
  PolicyRule rule = Scenario{}.rule;
  rule.max_attempts = 1;
  EXPECT_EQ(RetryAt(1, ErrorClass::transient, rule, kCreated, 0.5).action,
            RetryAction::dead_letter);
}

}  // namespace
}  // namespace cogo::policy
