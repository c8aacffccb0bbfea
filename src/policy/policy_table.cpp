#include "cogo/policy/policy_table.h"

#include <algorithm>
#include <stdexcept>

#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"

namespace cogo::policy {
namespace {

using config::DoubleRange;
using config::JsonObject;
using config::JsonReason;
using config::JsonValue;
using std::chrono::milliseconds;

constexpr int kMaxAttemptsLimit = 1000;
constexpr int64_t kMaxBackoffMs = 24LL * 60 * 60 * 1000;  // one day
constexpr double kMaxMultiplier = 100.0;

// A model a rule names explicitly must have a price, or its usage could not be metered in USD.
std::vector<std::string> ReadModels(const JsonValue& value, const PriceTable& prices) {
  std::vector<std::string> names;
  for (const JsonValue& item : value.AsArray(/*allow_empty=*/false)) {
    names.push_back(item.AsString());
    if (names.back() != "*" && !prices.contains(names.back())) {
      item.Fail(JsonReason::invalid_value, "model \"" + names.back() +
                                               "\" has no entry in prices (list free models with price 0)");
    }
  }
  return names;
}

std::vector<std::string> ReadVersions(const JsonValue& value) {
  std::vector<std::string> names;
  for (const JsonValue& item : value.AsArray(/*allow_empty=*/false)) names.push_back(item.AsString());
  return names;
}

void ReadBackoff(const JsonObject& o, BackoffParams& backoff) {
  backoff.base = milliseconds(o.IntOr("base_ms", backoff.base.count(), 0, kMaxBackoffMs));
  backoff.cap = milliseconds(o.IntOr("cap_ms", backoff.cap.count(), 0, kMaxBackoffMs));
  backoff.multiplier = o.DoubleOr("multiplier", backoff.multiplier, DoubleRange::Between(1.0, kMaxMultiplier));
  backoff.jitter = o.DoubleOr("jitter", backoff.jitter, DoubleRange::Between(0.0, 1.0));
  o.Finish();
  if (backoff.base > backoff.cap) o.FailAt("cap_ms", JsonReason::invalid_value, "must be >= base_ms");
}

// Reads a rule over `base`: keys present replace base's values, absent keys keep them. The
// default rule has no base: every key but backoff is required.
PolicyRule ReadRule(const JsonObject& o, PolicyRule rule, bool complete, const PriceTable& prices) {
  const auto get = [&](std::string_view key) {
    return complete ? std::optional<JsonValue>(o.Required(key)) : o.Optional(key);
  };
  if (const auto v = get("allowed_models")) rule.allowed_models = ReadModels(*v, prices);
  if (const auto v = get("allowed_versions")) rule.allowed_versions = ReadVersions(*v);
  if (const auto v = get("max_cost_usd")) rule.max_cost_usd = v->AsDouble(DoubleRange::Positive());
  if (const auto v = get("max_tokens")) rule.max_tokens = v->AsInt(1);
  if (const auto v = get("default_ttl_ms")) rule.default_ttl = milliseconds(v->AsInt(1, kMaxTtl.count()));
  if (const auto v = get("max_ttl_ms")) rule.max_ttl = milliseconds(v->AsInt(1, kMaxTtl.count()));
  if (const auto v = get("max_attempts")) rule.max_attempts = static_cast<int>(v->AsInt(1, kMaxAttemptsLimit));
  if (const auto backoff = o.OptionalObject("backoff")) ReadBackoff(*backoff, rule.backoff);
  o.Finish();
  // Checked after merging, so an agent rule cannot lower max_ttl under the default's default_ttl.
  if (rule.default_ttl > rule.max_ttl) {
    o.FailAt("default_ttl_ms", JsonReason::invalid_value,
             "must be <= max_ttl_ms (" + std::to_string(rule.max_ttl.count()) + "), got " +
                 std::to_string(rule.default_ttl.count()));
  }
  return rule;
}

// agents.<id> or routes.<service>/<role>: rules over the default.
std::map<std::string, PolicyRule, std::less<>> ReadRuleMap(const JsonObject& root, const char* section,
                                                           const char* name_prefix,
                                                           const PolicyRule& base,
                                                           const PriceTable& prices) {
  std::map<std::string, PolicyRule, std::less<>> rules;
  const auto map = root.OptionalObject(section);
  if (!map) return rules;
  for (const auto& [key, value] : map->Entries()) {
    if (key.empty()) value.Fail(JsonReason::empty, "name must not be empty");
    if (std::string_view(section) == "routes") {
      const size_t slash = key.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == key.size() ||
          key.find('/', slash + 1) != std::string::npos) {
        value.Fail(JsonReason::invalid_name, "route must be \"<service>/<role>\"");
      }
    }
    PolicyRule rule = ReadRule(value.AsObject(), base, /*complete=*/false, prices);
    rule.name = std::string(name_prefix) + key;
    rules.emplace(key, std::move(rule));
  }
  map->Finish();
  return rules;
}

PriceTable ReadPrices(const std::optional<JsonObject>& map) {
  PriceTable prices;
  if (!map) return prices;
  for (const auto& [model, value] : map->Entries()) {
    if (model.empty()) value.Fail(JsonReason::empty, "model name must not be empty");
    const auto price = value.AsObject();
    prices.emplace(model, ModelPrice{price.Double("usd_per_1k_input", DoubleRange::AtLeast(0.0)),
                                     price.Double("usd_per_1k_output", DoubleRange::AtLeast(0.0))});
    price.Finish();
  }
  map->Finish();
  return prices;
}

}  // namespace

bool PolicyRule::AllowsModel(std::string_view model) const {
  return std::any_of(allowed_models.begin(), allowed_models.end(), [&](const std::string& allowed) {
    return allowed == "*" || allowed == model;
  });
}

bool PolicyRule::AllowsVersion(std::string_view version) const {
  return std::any_of(
      allowed_versions.begin(), allowed_versions.end(),
      [&](const std::string& allowed) { return allowed == "*" || allowed == version; });
}

std::string PolicyConfigError::ToString() const {
  return "policy config: " + (path.empty() ? std::string("(document)") : path) + ": " + message;
}

const PolicyRule& PolicyTable::Lookup(std::string_view agent_id,
                                      const std::optional<Target>& target) const {
  if (const auto agent = agent_rules_.find(agent_id); agent != agent_rules_.end()) {
    return agent->second;
  }
  if (target) {
    if (const auto route = route_rules_.find(target->Route()); route != route_rules_.end()) {
      return route->second;
    }
  }
  return default_rule_;
}

double PolicyTable::DailyCapUsd(std::string_view tenant) const {
  const auto it = tenant_daily_caps_usd_.find(tenant);
  return it == tenant_daily_caps_usd_.end() ? default_daily_cap_usd_ : it->second;
}

PolicyTableResult ParsePolicyTable(std::string_view config_json) {
  try {
    const auto doc = config::JsonDocument::Parse(config_json, {.show_values = true});
    const auto root = doc.root().AsObject();
    const auto default_rule = root.Object("default");  // asked first: listed first when a key is unknown
    PolicyTable table;
    table.prices_ = ReadPrices(root.OptionalObject("prices"));
    table.default_rule_ = ReadRule(default_rule, PolicyRule{}, /*complete=*/true, table.prices_);
    table.default_rule_.name = "default";
    table.agent_rules_ = ReadRuleMap(root, "agents", "agent:", table.default_rule_, table.prices_);
    table.route_rules_ = ReadRuleMap(root, "routes", "route:", table.default_rule_, table.prices_);

    const auto tenants = root.Object("tenants");
    table.default_daily_cap_usd_ = tenants.Double("default_daily_cap_usd", DoubleRange::AtLeast(0.0));
    if (const auto caps = tenants.OptionalObject("daily_cap_usd")) {
      for (const auto& [tenant, cap] : caps->Entries()) {
        if (!config::IsValidName(tenant, config::kTenantName)) {
          cap.Fail(JsonReason::invalid_name, config::DescribeNameRule(config::kTenantName));
        }
        table.tenant_daily_caps_usd_.emplace(tenant, cap.AsDouble(DoubleRange::AtLeast(0.0)));
      }
      caps->Finish();
    }
    tenants.Finish();
    root.Finish();
    return table;
  } catch (const config::JsonError& e) {
    return PolicyConfigError{e.path(), e.message()};
  }
}

std::shared_ptr<const PolicyTable> LoadPolicyFile(const std::string& path) {
  auto parsed = ParsePolicyTable(config::ReadFile(path));
  if (!parsed.ok()) throw std::runtime_error(path + ": " + parsed.error().ToString());
  return std::make_shared<const PolicyTable>(std::move(parsed).table());
}

}  // namespace cogo::policy
