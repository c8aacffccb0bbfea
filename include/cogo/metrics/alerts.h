// Alert rules and their evaluation. A rule compares one metric per key (a route "service/role",
// an agent) over a window with a threshold; a key fires while enough samples stand on the wrong
// side of it. Evaluate is pure (the observed samples and the keys firing before in, the new state
// and its transitions out), so the daemon's periodic task only reads samples and records what
// Evaluate decides. Rules come from DefaultAlertRules or a JSON file (LoadAlertRules, strict:
// unknown keys are refused). Thread-safe: pure functions and values.
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cogo/config/names.h"

namespace cogo::metrics {

// A workflow id as the metrics API and alert rules accept one: 1..128 of A-Z a-z 0-9 . _ -.
inline constexpr config::NameRule kWorkflowIdRule{"workflow id", 128, true};

enum class AlertMetric {
  bus_failure_rate,      // per route: (failed + dead-lettered) / finished attempts, in [0, 1]
  bus_avg_wait_seconds,  // per route: mean queue wait of messages started in the window
  bus_lag_seconds,       // per route: age of the oldest message due now and not claimed
  bus_dead_letters,      // per route: messages dead-lettered in the window
  decision_quality,      // per agent: share of decisions whose execution reached done, [0, 1]
};
[[nodiscard]] std::string_view MetricName(AlertMetric metric);

enum class AlertOp { at_least, above, at_most, below };  // >=, >, <=, <
[[nodiscard]] std::string_view OpSymbol(AlertOp op);

struct AlertRule {
  std::string name;              // [a-z0-9_]+, unique: the alert's identity in the table
  AlertMetric metric = AlertMetric::bus_failure_rate;
  AlertOp op = AlertOp::at_least;
  double threshold = 0;
  std::chrono::seconds window{3600};  // how far back the metric looks (lag ignores it)
  int64_t min_samples = 1;       // fewer observations than this never fire (1 failure of 1)
  std::string severity = "warning";   // warning | critical
  std::string description;
  std::string notify;  // workflow id started for each transition; empty: the server's default
};

// The seeds' acceptance: failure rate >= 5% over 24h, average wait >= 5s, decision quality
// < 85%, plus lag >= 60s and any dead letter in the last hour.
[[nodiscard]] std::vector<AlertRule> DefaultAlertRules();

// {"rules": [{name, metric, op, threshold, window?, min_samples?, severity?, description?,
// notify?}]};
// throws config::JsonError (path and reason) on anything else, duplicate names included.
[[nodiscard]] std::vector<AlertRule> LoadAlertRules(std::string_view json_text);

// One observation of a rule's metric: its key, value and how many events it summarises.
struct Sample {
  std::string key;
  double value = 0;
  int64_t count = 0;
};

struct FiringAlert {
  std::string key;
  double value = 0;
  int64_t count = 0;
};

struct AlertTransition {
  std::string key;
  bool firing = false;  // true: ok -> firing; false: firing -> resolved
  double value = 0;     // the value that caused it (0 when the key has no sample any more)
};

struct Evaluation {
  std::vector<FiringAlert> firing;          // every key firing now, in key order
  std::vector<AlertTransition> transitions;  // changes against `was_firing`, in key order
};

// True when `value` is on the alerting side of the rule's threshold.
[[nodiscard]] bool Breaches(const AlertRule& rule, double value);

// The rule against this round's samples. A key fires when its sample has at least min_samples
// and Breaches; a key that fired before and now does not (or has no sample) resolves.
[[nodiscard]] Evaluation Evaluate(const AlertRule& rule, const std::vector<Sample>& samples,
                                  const std::set<std::string>& was_firing);

// Sending a transition (sql/020's outbox): what to do with the brain's answer to starting its
// notify workflow's run. `http_status` 0 is a request that got no answer; `attempts` counts
// this one. Started on 200 (the Idempotency-Key's earlier run) and 202; tried again later on no
// answer, 408, 429 and 5xx until `max_attempts`; given up on any other refusal (an unknown
// workflow, parameters the definition refuses, a token it does not accept).
enum class SendStep { started, retry_later, give_up };
[[nodiscard]] SendStep NextSendStep(int http_status, int attempts, int max_attempts);

}  // namespace cogo::metrics
