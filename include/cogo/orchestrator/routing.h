// Routing rules and the pure decide step of the orchestrator: the routing config (intent ->
// target route, agent, model, version, budget, TTL; an optional LLM classifier for intents no
// rule names), the plan a decision produces, and the assignment/payload built from it. Loading
// is strict (unknown keys, wrong types and out-of-range values are errors naming the key path).
// Everything here is pure — no I/O, time passed in — and thread-safe; a loaded RoutingTable is
// immutable.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cogo/bus/message.h"
#include "cogo/policy/assignment.h"
#include "cogo/policy/policy_table.h"

namespace cogo::orchestrator {

// A rule either sends the request to one agent (target, agent, model, version, budget, TTL) or,
// when `workflow` is set, starts that workflow with the request's payload as its parameters
// (the other fields then stay empty: the definition's nodes carry the assignments).
struct RoutingRule {
  std::string intent;
  std::string workflow;  // a workflow id; empty for an agent rule
  policy::Target target;
  std::string agent_id;
  std::string model;
  std::string version;
  policy::Budget budget;
  std::chrono::milliseconds ttl{0};
  std::string description;  // shown to the classifier and in the state snapshot
};

struct ClassifierConfig {
  bool enabled = false;   // false: an intent without a rule fails with unknown_intent
  std::string model;      // the model asked to classify (required when enabled)
  int max_tokens = 16;    // the answer is one intent name
};

struct RoutingConfigError {
  std::string path;     // dotted key path, "" = the document
  std::string message;
  [[nodiscard]] std::string ToString() const;  // "routing config: <path>: <message>"
};

class RoutingTable {
 public:
  [[nodiscard]] const RoutingRule* Find(std::string_view intent) const;
  [[nodiscard]] const std::map<std::string, RoutingRule, std::less<>>& rules() const { return rules_; }
  [[nodiscard]] const ClassifierConfig& classifier() const { return classifier_; }
  // The table as JSON text in the config's own shape (for snapshots).
  [[nodiscard]] std::string ToJson() const;

 private:
  friend std::variant<RoutingTable, RoutingConfigError> ParseRoutingTable(std::string_view);
  std::map<std::string, RoutingRule, std::less<>> rules_;
  ClassifierConfig classifier_;
};

// Format: config/routing.example.json. `_comment` keys are allowed anywhere and ignored.
[[nodiscard]] std::variant<RoutingTable, RoutingConfigError> ParseRoutingTable(
    std::string_view config_json);
// Reads and parses a routing file; throws std::runtime_error naming the file and the key path.
[[nodiscard]] std::shared_ptr<const RoutingTable> LoadRoutingFile(const std::string& path);

// Problems a rule would meet at the executor: each agent rule's assignment admitted by the
// policy's rule for it (model, version, budget and TTL caps). Empty when all rules pass.
[[nodiscard]] std::vector<std::string> CheckAgainstPolicy(const RoutingTable& table,
                                                          const policy::PolicyTable& policy,
                                                          policy::TimePoint now);

struct Plan {
  std::string intent;      // as requested
  std::string matched_by;  // "rule" or "classifier"
  RoutingRule rule;        // the rule applied (rule.intent may differ when classified)
  std::string rationale;   // one human line: why this plan
};

struct DecideFailure {
  std::string reason;  // unknown_intent
  std::string detail;
};

using DecideResult = std::variant<Plan, DecideFailure>;

// Where a rule sends work, for people: "gateway/chat (agent a, model m)" or "workflow indexing".
[[nodiscard]] std::string Destination(const RoutingRule& rule);

// Whether `intent` needs the classifier: no rule matches and the classifier is enabled.
[[nodiscard]] bool NeedsClassification(std::string_view intent, const RoutingTable& table);

// Maps an intent to a plan. `classified` is the classifier's answer when it was asked
// (nullopt: not asked, or it named no known intent).
[[nodiscard]] DecideResult Decide(std::string_view intent, const RoutingTable& table,
                                  const std::optional<std::string>& classified);

// The classifier conversation: a system prompt listing the known intents, and the user turn.
[[nodiscard]] std::pair<std::string, std::string> ClassificationPrompt(
    std::string_view intent, std::string_view payload_json, const RoutingTable& table);
// The known intent a classifier reply names (first word, trimmed of punctuation, lower case),
// or nullopt ("none", anything unknown).
[[nodiscard]] std::optional<std::string> ParseClassification(std::string_view reply,
                                                             const RoutingTable& table);

// The envelope for an agent plan issued at `issued_at`.
[[nodiscard]] policy::AssignmentEnvelope BuildAssignment(const Plan& plan,
                                                         policy::TimePoint issued_at);
// `{"__assignment": ..., "intent": ..., "input": <input_json>}` — the execute message payload.
[[nodiscard]] std::string ExecutePayloadJson(const Plan& plan, policy::TimePoint issued_at,
                                             std::string_view input_json);
// The (orchestrator, execute) message carrying that payload for `tenant` on `shard`; the caller
// adds its idempotency key, correlation id or parent.
[[nodiscard]] bus::PublishRequest ExecuteMessage(const Plan& plan, policy::TimePoint issued_at,
                                                 std::string_view input_json, std::string tenant, int shard,
                                                 int max_attempts);
// The plan as JSON: {intent, matched_by, rule_intent, target, agent_id, model, version, budget,
// ttl_ms, rationale}. ParsePlanJson accepts it back (strict; rationale/matched_by optional).
[[nodiscard]] std::string PlanJson(const Plan& plan);
[[nodiscard]] std::variant<Plan, RoutingConfigError> ParsePlanJson(std::string_view plan_json);

}  // namespace cogo::orchestrator
