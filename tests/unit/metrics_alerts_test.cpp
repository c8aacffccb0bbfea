#include "cogo/metrics/alerts.h"

#include <gtest/gtest.h>

#include "cogo/config/json_reader.h"

namespace cogo::metrics {
namespace {

using std::chrono::seconds;

AlertRule Rule(AlertOp op, double threshold, int64_t min_samples = 1) {
  AlertRule rule;
  rule.name = "r";
  rule.op = op;
  rule.threshold = threshold;
  rule.min_samples = min_samples;
  return rule;
}

TEST(MetricsAlerts, EachOperatorDecidesOnWhichSideTheThresholdBreaches) {
  const struct {
    AlertOp op;
    double value;
    bool breaches;
  } cases[] = {
      {AlertOp::at_least, 0.05, true},  {AlertOp::at_least, 0.049, false}, {AlertOp::above, 0.05, false},
      {AlertOp::above, 0.051, true},    {AlertOp::below, 0.85, false},     {AlertOp::below, 0.849, true},
      {AlertOp::at_most, 0.85, true},   {AlertOp::at_most, 0.86, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(OpSymbol(c.op)) + " " + std::to_string(c.value));
    const double threshold = c.op == AlertOp::below || c.op == AlertOp::at_most ? 0.85 : 0.05;
    EXPECT_EQ(Breaches(Rule(c.op, threshold), c.value), c.breaches);
  }
}

TEST(MetricsAlerts, TransitionsFollowTheSamplesAgainstWhatFiredBefore) {
  const auto rule = Rule(AlertOp::at_least, 0.05, 20);
  const struct {
    const char* name;
    std::vector<Sample> samples;
    std::set<std::string> was;
    std::vector<std::string> firing;
    std::vector<std::pair<std::string, bool>> transitions;  // key, firing
  } cases[] = {
      {"quiet stays quiet", {{"a/b", 0.01, 100}}, {}, {}, {}},
      {"breach fires", {{"a/b", 0.10, 100}}, {}, {"a/b"}, {{"a/b", true}}},
      {"exactly the threshold fires", {{"a/b", 0.05, 20}}, {}, {"a/b"}, {{"a/b", true}}},
      {"too few samples never fire", {{"a/b", 1.0, 19}}, {}, {}, {}},
      {"still firing: no transition", {{"a/b", 0.2, 100}}, {"a/b"}, {"a/b"}, {}},
      {"recovered resolves", {{"a/b", 0.01, 100}}, {"a/b"}, {}, {{"a/b", false}}},
      {"no sample any more resolves", {}, {"a/b"}, {}, {{"a/b", false}}},
      {"samples fell below the minimum resolve", {{"a/b", 0.5, 3}}, {"a/b"}, {}, {{"a/b", false}}},
      {"keys move independently",
       {{"a/b", 0.2, 100}, {"c/d", 0.0, 100}, {"e/f", 0.3, 50}},
       {"c/d", "e/f"},
       {"a/b", "e/f"},
       {{"a/b", true}, {"c/d", false}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto e = Evaluate(rule, c.samples, c.was);
    std::vector<std::string> firing;
    for (const auto& f : e.firing) firing.push_back(f.key);
    EXPECT_EQ(firing, c.firing);
    std::vector<std::pair<std::string, bool>> transitions;
    for (const auto& t : e.transitions) transitions.emplace_back(t.key, t.firing);
    EXPECT_EQ(transitions, c.transitions);
  }
}

TEST(MetricsAlerts, DecisionQualityFiresBelowItsThreshold) {
  const auto rules = DefaultAlertRules();
  const auto it = std::find_if(rules.begin(), rules.end(), [](const auto& r) { return r.metric == AlertMetric::decision_quality; });
  ASSERT_NE(it, rules.end());
  EXPECT_EQ(Evaluate(*it, {{"planner", 0.80, 40}}, {}).firing.size(), 1u);
  EXPECT_TRUE(Evaluate(*it, {{"planner", 0.90, 40}}, {}).firing.empty());
}

TEST(MetricsAlerts, DefaultsAreTheSeedsAcceptance) {
  const auto rules = DefaultAlertRules();
  auto find = [&](AlertMetric m) { return *std::find_if(rules.begin(), rules.end(), [&](const auto& r) { return r.metric == m; }); };
  EXPECT_EQ(find(AlertMetric::bus_failure_rate).threshold, 0.05);
  EXPECT_EQ(find(AlertMetric::bus_failure_rate).window, seconds(86400));
  EXPECT_EQ(find(AlertMetric::bus_avg_wait_seconds).threshold, 5.0);
  EXPECT_EQ(find(AlertMetric::decision_quality).op, AlertOp::below);
  EXPECT_EQ(find(AlertMetric::decision_quality).threshold, 0.85);
  EXPECT_EQ(find(AlertMetric::bus_dead_letters).threshold, 1.0);
  EXPECT_EQ(find(AlertMetric::bus_lag_seconds).op, AlertOp::at_least);
}

TEST(MetricsAlerts, RulesFileIsReadStrictly) {
  const auto rules = LoadAlertRules(R"({"rules": [
    {"name": "fail_fast", "metric": "bus_failure_rate", "op": ">", "threshold": 0.2, "window": "1h",
     "min_samples": 3, "severity": "critical", "description": "d"},
    {"name": "lag", "metric": "bus_lag_seconds", "op": ">=", "threshold": 30, "notify": "alertWebhook"}]})");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].notify, "");
  EXPECT_EQ(rules[1].notify, "alertWebhook");
  EXPECT_EQ(rules[0].op, AlertOp::above);
  EXPECT_EQ(rules[0].window, seconds(3600));
  EXPECT_EQ(rules[0].min_samples, 3);
  EXPECT_EQ(rules[1].severity, "warning");
  EXPECT_EQ(rules[1].min_samples, 1);

  const struct {
    const char* name;
    const char* text;
    config::JsonReason reason;
    const char* path;
  } refused[] = {
      {"unknown key", R"({"rules":[{"name":"a","metric":"bus_lag_seconds","op":">=","threshold":1,"for":"5m"}]})",
       config::JsonReason::unknown_key, "rules[0].for"},
      {"unknown metric", R"({"rules":[{"name":"a","metric":"cpu","op":">=","threshold":1}]})",
       config::JsonReason::invalid_value, "rules[0].metric"},
      {"bad op", R"({"rules":[{"name":"a","metric":"bus_lag_seconds","op":"=>","threshold":1}]})",
       config::JsonReason::invalid_value, "rules[0].op"},
      {"bad window", R"({"rules":[{"name":"a","metric":"bus_lag_seconds","op":">=","threshold":1,"window":"1y"}]})",
       config::JsonReason::invalid_value, "rules[0].window"},
      {"bad name", R"({"rules":[{"name":"Lag!","metric":"bus_lag_seconds","op":">=","threshold":1}]})",
       config::JsonReason::invalid_value, "rules[0].name"},
      {"duplicate name", R"({"rules":[{"name":"a","metric":"bus_lag_seconds","op":">=","threshold":1},
                                      {"name":"a","metric":"bus_lag_seconds","op":">=","threshold":2}]})",
       config::JsonReason::invalid_value, "rules[1]"},
      {"threshold a string", R"({"rules":[{"name":"a","metric":"bus_lag_seconds","op":">=","threshold":"1"}]})",
       config::JsonReason::wrong_type, "rules[0].threshold"},
      {"no rules", R"({})", config::JsonReason::missing_key, "rules"},
      {"bad notify workflow", R"({"rules":[{"name":"a","metric":"bus_lag_seconds","op":">=","threshold":1,"notify":"a b"}]})",
       config::JsonReason::invalid_value, "rules[0].notify"},
  };
  for (const auto& c : refused) {
    SCOPED_TRACE(c.name);
    try {
      (void)LoadAlertRules(c.text);
      ADD_FAILURE() << "accepted";
    } catch (const config::JsonError& e) {
      EXPECT_EQ(e.reason(), c.reason) << e.what();
      EXPECT_EQ(e.path(), c.path) << e.what();
    }
  }
}

// The brain's answer to starting a transition's run, per attempt (max 3).
TEST(MetricsAlerts, ATransitionIsSentOnceRetriedWhileTransientAndGivenUpOnRefusal) {
  const struct {
    int status;
    int attempts;
    SendStep step;
  } cases[] = {
      {202, 1, SendStep::started},     {200, 3, SendStep::started},  // 200: the key's earlier run
      {0, 1, SendStep::retry_later},   {503, 2, SendStep::retry_later}, {500, 1, SendStep::retry_later},
      {429, 1, SendStep::retry_later}, {408, 2, SendStep::retry_later},
      {0, 3, SendStep::give_up},       {503, 3, SendStep::give_up},
      {400, 1, SendStep::give_up},     {401, 1, SendStep::give_up},     {403, 1, SendStep::give_up},
      {404, 1, SendStep::give_up},     {409, 1, SendStep::give_up},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(NextSendStep(c.status, c.attempts, 3), c.step) << c.status << " attempt " << c.attempts;
  }
}

}  // namespace
}  // namespace cogo::metrics
