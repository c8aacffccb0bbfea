// The policy table: default, per-agent and per-route rules (allowed models and versions, budget
// caps, TTL limits, retry schedule), the model price table and per-tenant daily spending caps,
// loaded from the JSON text of a config file (format: docs/policy.md). Immutable once loaded,
// so concurrent reads are safe; to reload, parse a new table and swap a shared_ptr to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cogo/policy/assignment.h"
#include "cogo/policy/backoff.h"
#include "cogo/policy/metering.h"

namespace cogo::policy {

// Limits applied to one assignment. Loaded rules always satisfy: non-empty allow-lists,
// max_cost_usd > 0, max_tokens >= 1, 0 < default_ttl <= max_ttl <= kMaxTtl, max_attempts >= 1,
// backoff.base <= backoff.cap.
struct PolicyRule {
  std::string name;                           // "default", "agent:<id>" or "route:<svc>/<role>"
  std::vector<std::string> allowed_models;    // exact names; "*" allows any model
  std::vector<std::string> allowed_versions;  // exact strings; "*" allows any version
  double max_cost_usd = 0.0;                  // cap on budget.maxCostUsd
  int64_t max_tokens = 0;                     // cap on budget.maxTokens
  std::chrono::milliseconds default_ttl{0};   // ttl_ms the orchestrator writes by default
  std::chrono::milliseconds max_ttl{0};       // longest ttl_ms admitted
  int max_attempts = 1;                       // the attempt numbered max_attempts is the last
  BackoffParams backoff;                      // delay between transient failures

  [[nodiscard]] bool AllowsModel(std::string_view model) const;
  [[nodiscard]] bool AllowsVersion(std::string_view version) const;
};

struct PolicyConfigError {
  std::string path;     // dotted key path, e.g. "routes.gateway/chat.max_tokens"; "" = document
  std::string message;  // e.g. "unknown key (allowed: ...)", "expected an integer, got \"5\""

  [[nodiscard]] std::string ToString() const;  // "policy config: <path>: <message>"
};

class PolicyTable;
class PolicyTableResult;

// Parses and validates the whole config. Unknown keys (at any level), duplicate keys, wrong
// types and out-of-range values are rejected, naming the key path. `_comment` is accepted as a
// key anywhere (its value must be a string) and is ignored.
[[nodiscard]] PolicyTableResult ParsePolicyTable(std::string_view config_json);

// Reads and parses a policy file; throws std::runtime_error naming the file and the key path,
// so a daemon refuses to start with one clear line.
[[nodiscard]] std::shared_ptr<const PolicyTable> LoadPolicyFile(const std::string& path);

class PolicyTable {
 public:
  // The rule for an assignment. Precedence, first match wins and is used whole:
  //   1. agents[agent_id]
  //   2. routes["<service>/<role>"] of the target (only when a target is given)
  //   3. default
  // Keys a rule omits were filled from `default` when the table was loaded (never from a route
  // rule), so every returned rule is complete.
  [[nodiscard]] const PolicyRule& Lookup(std::string_view agent_id,
                                         const std::optional<Target>& target) const;
  [[nodiscard]] const PolicyRule& Lookup(const AssignmentEnvelope& envelope) const {
    return Lookup(envelope.agent_id, envelope.target);
  }

  // The tenant's daily spending cap in USD: its own entry, else the configured default.
  [[nodiscard]] double DailyCapUsd(std::string_view tenant) const;

  [[nodiscard]] const PriceTable& prices() const { return prices_; }
  [[nodiscard]] const PolicyRule& default_rule() const { return default_rule_; }

 private:
  friend PolicyTableResult ParsePolicyTable(std::string_view config_json);
  PolicyTable() = default;

  PolicyRule default_rule_;
  std::map<std::string, PolicyRule, std::less<>> agent_rules_;
  std::map<std::string, PolicyRule, std::less<>> route_rules_;  // key "service/role"
  PriceTable prices_;
  double default_daily_cap_usd_ = 0.0;
  std::map<std::string, double, std::less<>> tenant_daily_caps_usd_;
};

// Either a loaded table or the first problem found in the config.
class [[nodiscard]] PolicyTableResult {
 public:
  PolicyTableResult(PolicyTable table) : value_(std::move(table)) {}        // NOLINT
  PolicyTableResult(PolicyConfigError error) : value_(std::move(error)) {}  // NOLINT

  [[nodiscard]] bool ok() const { return value_.index() == 0; }
  // Preconditions: ok() for table(), !ok() for error(); violating them throws.
  [[nodiscard]] const PolicyTable& table() const& { return std::get<0>(value_); }
  [[nodiscard]] PolicyTable table() && { return std::get<0>(std::move(value_)); }
  [[nodiscard]] const PolicyConfigError& error() const { return std::get<1>(value_); }

 private:
  std::variant<PolicyTable, PolicyConfigError> value_;
};

}  // namespace cogo::policy
