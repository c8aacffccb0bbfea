#include "cogo/metrics/alerts.h"

#include <algorithm>
#include <map>
#include <optional>

#include "cogo/config/json_reader.h"
#include "cogo/config/names.h"
#include "cogo/metrics/window.h"

namespace cogo::metrics {
namespace {

using config::JsonReason;
using std::chrono::seconds;

constexpr std::pair<AlertMetric, std::string_view> kMetrics[] = {
    {AlertMetric::bus_failure_rate, "bus_failure_rate"},
    {AlertMetric::bus_avg_wait_seconds, "bus_avg_wait_seconds"},
    {AlertMetric::bus_lag_seconds, "bus_lag_seconds"},
    {AlertMetric::bus_dead_letters, "bus_dead_letters"},
    {AlertMetric::decision_quality, "decision_quality"},
};
constexpr std::pair<AlertOp, std::string_view> kOps[] = {
    {AlertOp::at_least, ">="}, {AlertOp::above, ">"}, {AlertOp::at_most, "<="}, {AlertOp::below, "<"}};

bool IsRuleName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

AlertRule ReadRule(const config::JsonObject& o) {
  AlertRule rule;
  rule.name = o.String("name", {.max_bytes = 64});
  if (!IsRuleName(rule.name)) o.FailAt("name", JsonReason::invalid_value, "a rule name is 1..64 of a-z 0-9 _");
  const auto metric = o.String("metric");
  const auto* m = std::find_if(std::begin(kMetrics), std::end(kMetrics), [&](const auto& e) { return e.second == metric; });
  if (m == std::end(kMetrics)) {
    o.FailAt("metric", JsonReason::invalid_value,
             "metric must be bus_failure_rate, bus_avg_wait_seconds, bus_lag_seconds, bus_dead_letters or decision_quality");
  }
  rule.metric = m->first;
  const auto op = o.String("op");
  const auto* p = std::find_if(std::begin(kOps), std::end(kOps), [&](const auto& e) { return e.second == op; });
  if (p == std::end(kOps)) o.FailAt("op", JsonReason::invalid_value, "op must be >=, >, <= or <");
  rule.op = p->first;
  rule.threshold = o.Double("threshold");
  if (const auto window = o.Optional("window")) {
    const auto span = ParseWindow(window->AsString(), seconds(0));
    if (!span.ok()) window->Fail(JsonReason::invalid_value, span.error);
    rule.window = span.value;
  }
  rule.min_samples = o.IntOr("min_samples", 1, 1, 1000000000);
  rule.severity = o.StringOr("severity", "warning");
  if (rule.severity != "warning" && rule.severity != "critical") {
    o.FailAt("severity", JsonReason::invalid_value, "severity must be warning or critical");
  }
  rule.description = o.StringOr("description", "", {.allow_empty = true, .max_bytes = 512});
  if (const auto notify = o.Optional("notify")) {
    rule.notify = notify->AsString();
    if (!config::IsValidName(rule.notify, kWorkflowIdRule)) {
      notify->Fail(JsonReason::invalid_value, config::DescribeNameRule(kWorkflowIdRule));
    }
  }
  o.Finish();
  return rule;
}

}  // namespace

std::string_view MetricName(AlertMetric metric) {
  for (const auto& [m, name] : kMetrics) {
    if (m == metric) return name;
  }
  return "unknown";
}

std::string_view OpSymbol(AlertOp op) {
  for (const auto& [o, symbol] : kOps) {
    if (o == op) return symbol;
  }
  return "?";
}

std::vector<AlertRule> DefaultAlertRules() {
  return {
      {"bus_failure_rate", AlertMetric::bus_failure_rate, AlertOp::at_least, 0.05, seconds(24 * 3600), 20,
       "critical", "5% or more of a route's finished attempts failed over 24h", ""},
      {"bus_avg_wait", AlertMetric::bus_avg_wait_seconds, AlertOp::at_least, 5.0, seconds(900), 5,
       "warning", "messages of a route waited 5s or more on average before a worker took them (15m)", ""},
      {"decision_quality", AlertMetric::decision_quality, AlertOp::below, 0.85, seconds(24 * 3600), 20,
       "warning", "fewer than 85% of an agent's decisions reached done over 24h", ""},
      {"bus_lag", AlertMetric::bus_lag_seconds, AlertOp::at_least, 60.0, seconds(900), 1,
       "critical", "the oldest message due on a route has waited a minute or more", ""},
      {"bus_dead_letters", AlertMetric::bus_dead_letters, AlertOp::at_least, 1.0, seconds(3600), 1,
       "warning", "a route dead-lettered messages in the last hour", ""},
  };
}

std::vector<AlertRule> LoadAlertRules(std::string_view json_text) {
  const auto doc = config::JsonDocument::Parse(json_text, {.show_values = true});
  const auto root = doc.root().AsObject();
  std::vector<AlertRule> rules;
  for (const auto& item : root.Array("rules")) {
    rules.push_back(ReadRule(item.AsObject()));
    for (size_t i = 0; i + 1 < rules.size(); ++i) {
      if (rules[i].name == rules.back().name) item.Fail(JsonReason::invalid_value, "a rule of this name exists already");
    }
  }
  root.Finish();
  return rules;
}

bool Breaches(const AlertRule& rule, double value) {
  switch (rule.op) {
    case AlertOp::at_least: return value >= rule.threshold;
    case AlertOp::above: return value > rule.threshold;
    case AlertOp::at_most: return value <= rule.threshold;
    case AlertOp::below: return value < rule.threshold;
  }
  return false;
}

Evaluation Evaluate(const AlertRule& rule, const std::vector<Sample>& samples,
                    const std::set<std::string>& was_firing) {
  std::map<std::string, const Sample*> by_key;
  for (const auto& s : samples) by_key[s.key] = &s;
  Evaluation out;
  std::set<std::string> now_firing;
  for (const auto& [key, s] : by_key) {
    if (s->count < rule.min_samples || !Breaches(rule, s->value)) continue;
    out.firing.push_back({key, s->value, s->count});
    now_firing.insert(key);
  }
  std::set<std::string> keys = was_firing;
  keys.insert(now_firing.begin(), now_firing.end());
  for (const auto& key : keys) {
    const bool before = was_firing.count(key) > 0;
    const bool after = now_firing.count(key) > 0;
    if (before == after) continue;
    const auto it = by_key.find(key);
    out.transitions.push_back({key, after, it == by_key.end() ? 0.0 : it->second->value});
  }
  return out;
}

SendStep NextSendStep(int http_status, int attempts, int max_attempts) {
  if (http_status == 200 || http_status == 202) return SendStep::started;
  const bool transient = http_status == 0 || http_status == 408 || http_status == 429 || http_status >= 500;
  return transient && attempts < max_attempts ? SendStep::retry_later : SendStep::give_up;
}

}  // namespace cogo::metrics
