#include "cogo/policy/policy_table.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace cogo::policy {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr std::string_view kComment = "_comment";
constexpr int kMaxAttemptsLimit = 1000;
constexpr int64_t kMaxBackoffMs = 24LL * 60 * 60 * 1000;  // one day
constexpr double kMaxMultiplier = 100.0;

// Thrown inside the loader only; ParsePolicyTable turns it into a PolicyConfigError.
struct ConfigFailure {
  std::string path;
  std::string message;
};

[[noreturn]] void Fail(std::string path, std::string message) {
  throw ConfigFailure{std::move(path), std::move(message)};
}

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// A short rendering of an offending value for the error message.
std::string Shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

const json& RequireObject(const json& value, const std::string& path) {
  if (!value.is_object()) Fail(path, "expected an object, got " + Shown(value));
  return value;
}

// Rejects keys outside `allowed` by name; `_comment` is always allowed if it holds a string.
void CheckKeys(const json& object, const std::string& path,
               std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    if (key == kComment) {
      if (!value.is_string()) Fail(Join(path, key), "expected a string, got " + Shown(value));
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string names;
      for (const std::string_view name : allowed)
        names += (names.empty() ? "" : ", ") + std::string(name);
      Fail(Join(path, key), "unknown key (allowed: " + names + ")");
    }
  }
}

void RequireKeys(const json& object, const std::string& path,
                 std::initializer_list<const char*> required) {
  for (const char* key : required) {
    if (!object.contains(key)) Fail(Join(path, key), "required key is missing");
  }
}

int64_t ReadInteger(const json& value, const std::string& path, int64_t min, int64_t max) {
  if (!value.is_number_integer()) Fail(path, "expected an integer, got " + Shown(value));
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    Fail(path, "must be at most " + std::to_string(max) + ", got " + Shown(value));
  }
  const auto number = value.get<int64_t>();
  if (number < min || number > max) {
    Fail(path, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                   Shown(value));
  }
  return number;
}

enum class Lower { inclusive, exclusive };

double ReadNumber(const json& value, const std::string& path, double min, Lower lower,
                  double max = std::numeric_limits<double>::max()) {
  if (!value.is_number()) Fail(path, "expected a number, got " + Shown(value));
  const auto number = value.get<double>();
  const bool below = lower == Lower::inclusive ? number < min : number <= min;
  if (!std::isfinite(number) || below || number > max) {
    const std::string bound = lower == Lower::inclusive ? ">= " : "> ";
    Fail(path, "must be " + bound + Shown(json(min)) +
                   (max < std::numeric_limits<double>::max() ? " and <= " + Shown(json(max)) : "") +
                   ", got " + Shown(value));
  }
  return number;
}

std::vector<std::string> ReadNameList(const json& value, const std::string& path) {
  if (!value.is_array()) Fail(path, "expected an array of strings, got " + Shown(value));
  if (value.empty()) Fail(path, "must list at least one name (\"*\" allows any)");
  std::vector<std::string> names;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item_path = path + "[" + std::to_string(i) + "]";
    if (!value[i].is_string()) Fail(item_path, "expected a string, got " + Shown(value[i]));
    if (value[i].get_ref<const std::string&>().empty()) Fail(item_path, "must not be empty");
    names.push_back(value[i].get<std::string>());
  }
  return names;
}

void ReadBackoff(const json& value, const std::string& path, BackoffParams& backoff) {
  CheckKeys(RequireObject(value, path), path, {"base_ms", "cap_ms", "multiplier", "jitter"});
  if (value.contains("base_ms")) {
    backoff.base =
        milliseconds(ReadInteger(value["base_ms"], Join(path, "base_ms"), 0, kMaxBackoffMs));
  }
  if (value.contains("cap_ms")) {
    backoff.cap =
        milliseconds(ReadInteger(value["cap_ms"], Join(path, "cap_ms"), 0, kMaxBackoffMs));
  }
  if (value.contains("multiplier")) {
    backoff.multiplier = ReadNumber(value["multiplier"], Join(path, "multiplier"), 1.0,
                                    Lower::inclusive, kMaxMultiplier);
  }
  if (value.contains("jitter")) {
    backoff.jitter = ReadNumber(value["jitter"], Join(path, "jitter"), 0.0, Lower::inclusive, 1.0);
  }
  if (backoff.base > backoff.cap) Fail(Join(path, "cap_ms"), "must be >= base_ms");
}

// Reads a rule over `base`: keys present replace base's values, absent keys keep them.
PolicyRule ReadRule(const json& value, const std::string& path, PolicyRule base) {
  CheckKeys(RequireObject(value, path), path,
            {"allowed_models", "allowed_versions", "max_cost_usd", "max_tokens", "default_ttl_ms",
             "max_ttl_ms", "max_attempts", "backoff"});
  PolicyRule rule = std::move(base);
  const auto at = [&](const char* key) { return Join(path, key); };
  if (value.contains("allowed_models")) {
    rule.allowed_models = ReadNameList(value["allowed_models"], at("allowed_models"));
  }
  if (value.contains("allowed_versions")) {
    rule.allowed_versions = ReadNameList(value["allowed_versions"], at("allowed_versions"));
  }
  if (value.contains("max_cost_usd")) {
    rule.max_cost_usd =
        ReadNumber(value["max_cost_usd"], at("max_cost_usd"), 0.0, Lower::exclusive);
  }
  if (value.contains("max_tokens")) {
    rule.max_tokens =
        ReadInteger(value["max_tokens"], at("max_tokens"), 1, std::numeric_limits<int64_t>::max());
  }
  if (value.contains("default_ttl_ms")) {
    rule.default_ttl = milliseconds(
        ReadInteger(value["default_ttl_ms"], at("default_ttl_ms"), 1, kMaxTtl.count()));
  }
  if (value.contains("max_ttl_ms")) {
    rule.max_ttl =
        milliseconds(ReadInteger(value["max_ttl_ms"], at("max_ttl_ms"), 1, kMaxTtl.count()));
  }
  if (value.contains("max_attempts")) {
    rule.max_attempts = static_cast<int>(
        ReadInteger(value["max_attempts"], at("max_attempts"), 1, kMaxAttemptsLimit));
  }
  if (value.contains("backoff")) ReadBackoff(value["backoff"], at("backoff"), rule.backoff);
  // Checked after merging, so an agent rule cannot lower max_ttl under the default's default_ttl.
  if (rule.default_ttl > rule.max_ttl) {
    Fail(at("default_ttl_ms"), "must be <= max_ttl_ms (" + std::to_string(rule.max_ttl.count()) +
                                   "), got " + std::to_string(rule.default_ttl.count()));
  }
  return rule;
}

// A model a rule names explicitly must have a price, or its usage could not be metered in USD.
void RequirePrices(const PolicyRule& rule, const std::string& path, const PriceTable& prices) {
  for (size_t i = 0; i < rule.allowed_models.size(); ++i) {
    const std::string& model = rule.allowed_models[i];
    if (model != "*" && !prices.contains(model)) {
      Fail(Join(path, "allowed_models") + "[" + std::to_string(i) + "]",
           "model \"" + model + "\" has no entry in prices (list free models with price 0)");
    }
  }
}

std::map<std::string, PolicyRule, std::less<>> ReadRuleMap(const json& root, const char* section,
                                                           const char* name_prefix,
                                                           const PolicyRule& base,
                                                           const PriceTable& prices) {
  std::map<std::string, PolicyRule, std::less<>> rules;
  if (!root.contains(section)) return rules;
  const std::string section_path = section;
  for (const auto& [key, value] : RequireObject(root[section], section_path).items()) {
    if (key == kComment) continue;
    const std::string path = Join(section_path, key);
    if (key.empty()) Fail(path, "name must not be empty");
    if (section_path == "routes") {
      const size_t slash = key.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == key.size() ||
          key.find('/', slash + 1) != std::string::npos) {
        Fail(path, "route must be \"<service>/<role>\"");
      }
    }
    PolicyRule rule = ReadRule(value, path, base);
    rule.name = std::string(name_prefix) + key;
    RequirePrices(rule, path, prices);
    rules.emplace(key, std::move(rule));
  }
  return rules;
}

PriceTable ReadPrices(const json& root) {
  PriceTable prices;
  if (!root.contains("prices")) return prices;
  for (const auto& [model, value] : RequireObject(root["prices"], "prices").items()) {
    if (model == kComment) continue;
    const std::string path = Join("prices", model);
    if (model.empty()) Fail(path, "model name must not be empty");
    CheckKeys(RequireObject(value, path), path, {"usd_per_1k_input", "usd_per_1k_output"});
    RequireKeys(value, path, {"usd_per_1k_input", "usd_per_1k_output"});
    prices.emplace(
        model, ModelPrice{ReadNumber(value["usd_per_1k_input"], Join(path, "usd_per_1k_input"), 0.0,
                                     Lower::inclusive),
                          ReadNumber(value["usd_per_1k_output"], Join(path, "usd_per_1k_output"),
                                     0.0, Lower::inclusive)});
  }
  return prices;
}

// JSON objects may legally repeat a key (the last one wins); in a config that hides a mistake.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames_.push_back({}); break;
      case json::parse_event_t::object_end: frames_.pop_back(); break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!frames_.back().keys.insert(key).second && !duplicate_) {
          std::string path;
          for (size_t i = 0; i + 1 < frames_.size(); ++i) path = Join(path, frames_[i].current);
          duplicate_ = Join(path, key);
        }
        frames_.back().current = key;
        break;
      }
      default: break;
    }
    return true;
  }
  [[nodiscard]] const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    std::set<std::string> keys;
    std::string current;
  };
  std::vector<Frame> frames_;
  std::optional<std::string> duplicate_;
};

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
    DuplicateKeyFinder duplicates;
    json root;
    try {
      root = json::parse(config_json.begin(), config_json.end(), std::ref(duplicates));
    } catch (const json::parse_error& e) {
      return PolicyConfigError{"", std::string("invalid JSON: ") + e.what()};
    }
    if (duplicates.duplicate()) return PolicyConfigError{*duplicates.duplicate(), "duplicate key"};
    RequireObject(root, "");
    CheckKeys(root, "", {"default", "agents", "routes", "prices", "tenants"});
    RequireKeys(root, "", {"default", "tenants"});

    PolicyTable table;
    table.prices_ = ReadPrices(root);

    const json& default_value = RequireObject(root["default"], "default");
    RequireKeys(default_value, "default",
                {"allowed_models", "allowed_versions", "max_cost_usd", "max_tokens",
                 "default_ttl_ms", "max_ttl_ms", "max_attempts"});
    table.default_rule_ = ReadRule(default_value, "default", PolicyRule{});
    table.default_rule_.name = "default";
    RequirePrices(table.default_rule_, "default", table.prices_);

    table.agent_rules_ = ReadRuleMap(root, "agents", "agent:", table.default_rule_, table.prices_);
    table.route_rules_ = ReadRuleMap(root, "routes", "route:", table.default_rule_, table.prices_);

    const json& tenants = RequireObject(root["tenants"], "tenants");
    CheckKeys(tenants, "tenants", {"default_daily_cap_usd", "daily_cap_usd"});
    RequireKeys(tenants, "tenants", {"default_daily_cap_usd"});
    table.default_daily_cap_usd_ = ReadNumber(
        tenants["default_daily_cap_usd"], "tenants.default_daily_cap_usd", 0.0, Lower::inclusive);
    if (tenants.contains("daily_cap_usd")) {
      const json& caps = RequireObject(tenants["daily_cap_usd"], "tenants.daily_cap_usd");
      for (const auto& [tenant, cap] : caps.items()) {
        if (tenant == kComment) continue;
        const std::string path = Join("tenants.daily_cap_usd", tenant);
        if (tenant.empty()) Fail(path, "tenant must not be empty");
        table.tenant_daily_caps_usd_.emplace(tenant, ReadNumber(cap, path, 0.0, Lower::inclusive));
      }
    }
    return table;
  } catch (const ConfigFailure& failure) {
    return PolicyConfigError{failure.path, failure.message};
  }
}

}  // namespace cogo::policy
