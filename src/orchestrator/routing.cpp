#include "cogo/orchestrator/routing.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>

#include "cogo/policy/admit.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

struct LoadError {
  RoutingConfigError error;
};

[[noreturn]] void Throw(const std::string& path, const std::string& message) {
  throw LoadError{{path, message}};
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// Rejects keys outside `allowed` (and `_comment`, which must be a string).
void CheckKeys(const json& obj, const std::string& path, const std::set<std::string>& allowed) {
  if (!obj.is_object()) Throw(path, "expected an object");
  for (const auto& [key, value] : obj.items()) {
    if (key == "_comment") {
      if (!value.is_string()) Throw(Join(path, key), "expected a string");
      continue;
    }
    if (allowed.count(key) == 0) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      Throw(Join(path, key), "unknown key (allowed: " + names + ")");
    }
  }
}

const json& Required(const json& obj, const std::string& path, const std::string& key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) Throw(Join(path, key), "required");
  return *it;
}

std::string String(const json& v, const std::string& path, bool allow_empty = false) {
  if (!v.is_string()) Throw(path, "expected a string");
  auto s = v.get<std::string>();
  if (s.empty() && !allow_empty) Throw(path, "must not be empty");
  return s;
}

int64_t PositiveInt(const json& v, const std::string& path) {
  if (!v.is_number_integer()) Throw(path, "expected an integer");
  const auto n = v.get<int64_t>();
  if (n <= 0) Throw(path, "must be positive");
  return n;
}

double PositiveNumber(const json& v, const std::string& path) {
  if (!v.is_number()) Throw(path, "expected a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d <= 0) Throw(path, "must be a positive number");
  return d;
}

RoutingRule ParseRule(const json& obj, const std::string& path, const std::string& intent,
                      bool plan_shape) {
  std::set<std::string> keys = {"target", "agent_id", "model", "version", "budget", "ttl_ms",
                                "description"};
  if (plan_shape) keys.insert({"intent", "matched_by", "rule_intent", "rationale"});
  CheckKeys(obj, path, keys);
  RoutingRule r;
  r.intent = intent;
  const auto& target = Required(obj, path, "target");
  const auto tpath = Join(path, "target");
  CheckKeys(target, tpath, {"service", "role"});
  r.target.service = String(Required(target, tpath, "service"), Join(tpath, "service"));
  r.target.role = String(Required(target, tpath, "role"), Join(tpath, "role"));
  r.agent_id = String(Required(obj, path, "agent_id"), Join(path, "agent_id"));
  r.model = String(Required(obj, path, "model"), Join(path, "model"));
  r.version = String(Required(obj, path, "version"), Join(path, "version"));
  const auto& budget = Required(obj, path, "budget");
  const auto bpath = Join(path, "budget");
  CheckKeys(budget, bpath, {"maxCostUsd", "maxTokens"});
  r.budget.max_cost_usd = PositiveNumber(Required(budget, bpath, "maxCostUsd"), Join(bpath, "maxCostUsd"));
  r.budget.max_tokens = PositiveInt(Required(budget, bpath, "maxTokens"), Join(bpath, "maxTokens"));
  const auto ttl = PositiveInt(Required(obj, path, "ttl_ms"), Join(path, "ttl_ms"));
  if (std::chrono::milliseconds(ttl) > policy::kMaxTtl) Throw(Join(path, "ttl_ms"), "longer than 7 days");
  r.ttl = std::chrono::milliseconds(ttl);
  if (const auto it = obj.find("description"); it != obj.end()) {
    r.description = String(*it, Join(path, "description"), true);
  }
  return r;
}

bool ValidIntent(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

json RuleJson(const RoutingRule& r) {
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
  json doc = json::parse(config_json.begin(), config_json.end(), nullptr, false);
  if (doc.is_discarded()) return RoutingConfigError{"", "not valid JSON"};
  try {
    CheckKeys(doc, "", {"rules", "classifier"});
    RoutingTable table;
    const auto& rules = Required(doc, "", "rules");
    if (!rules.is_object()) Throw("rules", "expected an object");
    for (const auto& [intent, rule] : rules.items()) {
      if (intent == "_comment") {
        if (!rule.is_string()) Throw("rules._comment", "expected a string");
        continue;
      }
      if (!ValidIntent(intent)) Throw("rules." + intent, "an intent is 1..64 characters of a-z 0-9 . _ -");
      table.rules_.emplace(intent, ParseRule(rule, "rules." + intent, intent, false));
    }
    if (table.rules_.empty()) Throw("rules", "at least one rule is required");
    if (const auto it = doc.find("classifier"); it != doc.end()) {
      CheckKeys(*it, "classifier", {"enabled", "model", "max_tokens"});
      if (const auto e = it->find("enabled"); e != it->end()) {
        if (!e->is_boolean()) Throw("classifier.enabled", "expected true or false");
        table.classifier_.enabled = e->get<bool>();
      }
      if (const auto m = it->find("model"); m != it->end()) {
        table.classifier_.model = String(*m, "classifier.model");
      }
      if (const auto t = it->find("max_tokens"); t != it->end()) {
        const auto n = PositiveInt(*t, "classifier.max_tokens");
        if (n > 4096) Throw("classifier.max_tokens", "at most 4096");
        table.classifier_.max_tokens = static_cast<int>(n);
      }
      if (table.classifier_.enabled && table.classifier_.model.empty()) {
        Throw("classifier.model", "required when the classifier is enabled");
      }
    }
    return table;
  } catch (const LoadError& e) {
    return e.error;
  }
}

std::vector<std::string> CheckAgainstPolicy(const RoutingTable& table,
                                            const policy::PolicyTable& policy_table,
                                            policy::TimePoint now) {
  std::vector<std::string> problems;
  for (const auto& [intent, rule] : table.rules()) {
    Plan plan{intent, "rule", rule, ""};
    const auto envelope = BuildAssignment(plan, now);
    const auto decision = policy::Admit(
        envelope, policy_table.Lookup(envelope), policy::MessageTimes{now, now},
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

DecideResult Decide(std::string_view intent, const RoutingTable& table,
                    const std::optional<std::string>& classified) {
  if (const auto* rule = table.Find(intent)) {
    return Plan{std::string(intent), "rule", *rule,
                "intent '" + std::string(intent) + "' matches a routing rule -> " +
                    rule->target.Route() + " (agent " + rule->agent_id + ", model " + rule->model + ")"};
  }
  if (classified) {
    if (const auto* rule = table.Find(*classified)) {
      return Plan{std::string(intent), "classifier", *rule,
                  "no rule for intent '" + std::string(intent) + "'; the classifier (" +
                      table.classifier().model + ") chose '" + *classified + "' -> " +
                      rule->target.Route()};
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

std::string PlanJson(const Plan& plan) {
  json out = RuleJson(plan.rule);
  out["intent"] = plan.intent;
  out["matched_by"] = plan.matched_by;
  out["rule_intent"] = plan.rule.intent;
  out["rationale"] = plan.rationale;
  return out.dump();
}

std::variant<Plan, RoutingConfigError> ParsePlanJson(std::string_view plan_json) {
  json doc = json::parse(plan_json.begin(), plan_json.end(), nullptr, false);
  if (doc.is_discarded()) return RoutingConfigError{"plan", "not valid JSON"};
  try {
    if (!doc.is_object()) Throw("plan", "expected an object");
    const auto intent = String(Required(doc, "plan", "intent"), "plan.intent");
    if (!ValidIntent(intent)) Throw("plan.intent", "an intent is 1..64 characters of a-z 0-9 . _ -");
    std::string rule_intent = intent;
    if (const auto it = doc.find("rule_intent"); it != doc.end()) {
      rule_intent = String(*it, "plan.rule_intent");
    }
    Plan plan{intent, "plan", ParseRule(doc, "plan", rule_intent, true), "plan given by the caller"};
    if (const auto it = doc.find("rationale"); it != doc.end()) {
      plan.rationale = String(*it, "plan.rationale", true);
    }
    if (const auto it = doc.find("matched_by"); it != doc.end()) {
      (void)String(*it, "plan.matched_by");
    }
    return plan;
  } catch (const LoadError& e) {
    return e.error;
  }
}

}  // namespace cogo::orchestrator
