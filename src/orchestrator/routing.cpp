#include "cogo/orchestrator/routing.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <limits>
#include <stdexcept>

#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"
#include "cogo/policy/admit.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;
using config::JsonObject;

// Workflow ids are file names in the definitions directory (workflow/definition.cpp).
constexpr config::NameRule kWorkflowName{"workflow id", 64, true};

// The rule's fields; the caller finishes the object (a plan carries a few more keys).
RoutingRule ReadRule(const JsonObject& o, std::string intent) {
  RoutingRule r;
  r.intent = std::move(intent);
  r.description = o.StringOr("description", "", {.allow_empty = true});
  if (o.Has("workflow")) {
    r.workflow = o.Name("workflow", kWorkflowName);
    return r;
  }
  const auto target = o.Object("target");
  r.target = policy::ReadTarget(target);
  target.Finish();
  r.agent_id = o.String("agent_id");
  r.model = o.String("model");
  r.version = o.String("version");
  const auto budget = o.Object("budget");
  r.budget = policy::ReadBudget(budget);
  budget.Finish();
  r.ttl = std::chrono::milliseconds(o.Int("ttl_ms", 1, policy::kMaxTtl.count()));
  return r;
}

json RuleJson(const RoutingRule& r) {
  if (!r.workflow.empty()) {
    json out = {{"workflow", r.workflow}};
    if (!r.description.empty()) out["description"] = r.description;
    return out;
  }
  json out = {{"target", {{"service", r.target.service}, {"role", r.target.role}}},
              {"agent_id", r.agent_id},
              {"model", r.model},
              {"version", r.version},
              {"budget", {{"maxCostUsd", r.budget.max_cost_usd}, {"maxTokens", r.budget.max_tokens}}},
              {"ttl_ms", r.ttl.count()}};
  if (!r.description.empty()) out["description"] = r.description;
  return out;
}

}  // namespace

std::string RoutingConfigError::ToString() const {
  return "routing config: " + (path.empty() ? std::string("(document)") : path) + ": " + message;
}

const RoutingRule* RoutingTable::Find(std::string_view intent) const {
  const auto it = rules_.find(intent);
  return it == rules_.end() ? nullptr : &it->second;
}

std::string RoutingTable::ToJson() const {
  json rules = json::object();
  for (const auto& [intent, rule] : rules_) rules[intent] = RuleJson(rule);
  json classifier = {{"enabled", classifier_.enabled}, {"max_tokens", classifier_.max_tokens}};
  if (!classifier_.model.empty()) classifier["model"] = classifier_.model;
  return json{{"rules", rules}, {"classifier", classifier}}.dump();
}

std::variant<RoutingTable, RoutingConfigError> ParseRoutingTable(std::string_view config_json) {
  try {
    const auto doc = config::JsonDocument::Parse(config_json, {.show_values = true});
    const auto root = doc.root().AsObject();
    RoutingTable table;
    const auto rules = root.Object("rules");
    for (const auto& [intent, value] : rules.Entries()) {
      if (!config::IsValidName(intent, config::kIntentName)) {
        value.Fail(config::JsonReason::invalid_name, config::DescribeNameRule(config::kIntentName));
      }
      const auto rule = value.AsObject();
      table.rules_.emplace(intent, ReadRule(rule, intent));
      rule.Finish();
    }
    rules.Finish();
    if (table.rules_.empty()) rules.value().Fail(config::JsonReason::empty, "at least one rule is required");
    if (const auto classifier = root.OptionalObject("classifier")) {
      auto& c = table.classifier_;
      c.enabled = classifier->BoolOr("enabled", c.enabled);
      c.model = classifier->StringOr("model", c.model);
      c.max_tokens = static_cast<int>(classifier->IntOr("max_tokens", c.max_tokens, 1, 4096));
      classifier->Finish();
      if (c.enabled && c.model.empty()) {
        classifier->FailAt("model", config::JsonReason::missing_key,
                           "required when the classifier is enabled");
      }
    }
    root.Finish();
    return table;
  } catch (const config::JsonError& e) {
    return RoutingConfigError{e.path(), e.message()};
  }
}

std::shared_ptr<const RoutingTable> LoadRoutingFile(const std::string& path) {
  auto parsed = ParseRoutingTable(config::ReadFile(path));
  if (const auto* e = std::get_if<RoutingConfigError>(&parsed)) {
    throw std::runtime_error(path + ": " + e->ToString());
  }
  return std::make_shared<const RoutingTable>(std::get<RoutingTable>(std::move(parsed)));
}

std::vector<std::string> CheckAgainstPolicy(const RoutingTable& table,
                                            const policy::PolicyTable& policy_table,
                                            policy::TimePoint now) {
  std::vector<std::string> problems;
  for (const auto& [intent, rule] : table.rules()) {
    if (!rule.workflow.empty()) continue;  // its nodes' assignments are the workflow's
    Plan plan{intent, "rule", rule, ""};
    const auto envelope = BuildAssignment(plan, now);
    const auto decision = policy::Admit(
        envelope, policy_table.Lookup(envelope), std::nullopt,
        policy::TenantSpend{0.0, std::numeric_limits<double>::infinity()}, now);
    if (!decision.admitted()) {
      problems.push_back("rule " + intent + ": " + std::string(policy::ReasonName(*decision.reject)) +
                         ": " + decision.detail);
    }
  }
  if (table.classifier().enabled && !policy_table.prices().count(table.classifier().model)) {
    problems.push_back("classifier model " + table.classifier().model + " has no price");
  }
  return problems;
}

bool NeedsClassification(std::string_view intent, const RoutingTable& table) {
  return table.Find(intent) == nullptr && table.classifier().enabled;
}

std::string Destination(const RoutingRule& rule) {
  if (!rule.workflow.empty()) return "workflow " + rule.workflow;
  return rule.target.Route() + " (agent " + rule.agent_id + ", model " + rule.model + ")";
}

DecideResult Decide(std::string_view intent, const RoutingTable& table,
                    const std::optional<std::string>& classified) {
  if (const auto* rule = table.Find(intent)) {
    return Plan{std::string(intent), "rule", *rule,
                "intent '" + std::string(intent) + "' matches a routing rule -> " + Destination(*rule)};
  }
  if (classified) {
    if (const auto* rule = table.Find(*classified)) {
      return Plan{std::string(intent), "classifier", *rule,
                  "no rule for intent '" + std::string(intent) + "'; the classifier (" +
                      table.classifier().model + ") chose '" + *classified + "' -> " +
                      Destination(*rule)};
    }
  }
  if (table.classifier().enabled) {
    return DecideFailure{"unknown_intent", "no routing rule for the intent and the classifier named none"};
  }
  return DecideFailure{"unknown_intent", "no routing rule for the intent (classifier disabled)"};
}

std::pair<std::string, std::string> ClassificationPrompt(std::string_view intent,
                                                         std::string_view payload_json,
                                                         const RoutingTable& table) {
  std::string system =
      "You route requests. Answer with exactly one word: one of the intent names below, or "
      "none if no intent fits.\n";
  for (const auto& [name, rule] : table.rules()) {
    system += "- " + name + (rule.description.empty() ? "" : ": " + rule.description) + "\n";
  }
  std::string payload(payload_json.substr(0, 2000));
  return {system, "intent: " + std::string(intent) + "\npayload: " + payload};
}

std::optional<std::string> ParseClassification(std::string_view reply, const RoutingTable& table) {
  size_t begin = 0;
  while (begin < reply.size() && !std::isalnum(static_cast<unsigned char>(reply[begin]))) ++begin;
  size_t end = begin;
  std::string word;
  while (end < reply.size() && !std::isspace(static_cast<unsigned char>(reply[end]))) {
    word += static_cast<char>(std::tolower(static_cast<unsigned char>(reply[end])));
    ++end;
  }
  while (!word.empty() && !std::isalnum(static_cast<unsigned char>(word.back()))) word.pop_back();
  if (word.empty() || table.Find(word) == nullptr) return std::nullopt;
  return word;
}

policy::AssignmentEnvelope BuildAssignment(const Plan& plan, policy::TimePoint issued_at) {
  policy::AssignmentEnvelope e;
  e.agent_id = plan.rule.agent_id;
  e.version = plan.rule.version;
  e.model = plan.rule.model;
  e.budget = plan.rule.budget;
  e.ttl = plan.rule.ttl;
  e.issued_at = std::chrono::time_point_cast<std::chrono::milliseconds>(issued_at);
  e.target = plan.rule.target;
  return e;
}

std::string ExecutePayloadJson(const Plan& plan, policy::TimePoint issued_at,
                               std::string_view input_json) {
  json input = json::parse(input_json.begin(), input_json.end(), nullptr, false);
  if (input.is_discarded()) input = json::object();
  json out = {{"__assignment", json::parse(policy::ToJson(BuildAssignment(plan, issued_at)))},
              {"intent", plan.intent},
              {"input", std::move(input)}};
  return out.dump();
}

bus::PublishRequest ExecuteMessage(const Plan& plan, policy::TimePoint issued_at, std::string_view input_json,
                                   std::string tenant, int shard, int max_attempts) {
  bus::PublishRequest execute;
  execute.service = "orchestrator";
  execute.role = "execute";
  execute.shard = shard;
  execute.tenant = std::move(tenant);
  execute.payload_json = ExecutePayloadJson(plan, issued_at, input_json);
  execute.max_attempts = max_attempts;
  return execute;
}

std::string PlanJson(const Plan& plan) {
  json out = RuleJson(plan.rule);
  out["intent"] = plan.intent;
  out["matched_by"] = plan.matched_by;
  out["rule_intent"] = plan.rule.intent;
  out["rationale"] = plan.rationale;
  return out.dump();
}

std::variant<Plan, RoutingConfigError> ParsePlanJson(std::string_view plan_json) {
  try {
    // A plan arrives in a request body: its strings are not echoed back.
    const auto doc = config::JsonDocument::Parse(plan_json);
    const auto o = doc.root().AsObject();
    const auto intent = o.Name("intent", config::kIntentName);
    const auto rule_intent = o.StringOr("rule_intent", intent);
    Plan plan{intent, "plan", ReadRule(o, rule_intent), "plan given by the caller"};
    plan.rationale = o.StringOr("rationale", plan.rationale, {.allow_empty = true});
    (void)o.StringOr("matched_by", "");  // informative; this plan is matched_by "plan"
    o.Finish();
    return plan;
  } catch (const config::JsonError& e) {
    return RoutingConfigError{e.path().empty() ? "plan" : "plan." + e.path(), e.message()};
  }
}

}  // namespace cogo::orchestrator
