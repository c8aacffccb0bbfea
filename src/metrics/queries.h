// The metrics server's reads, one function per API resource, each a JSON document built from
// the statements in statements.h. `tenant` nullopt reads every tenant (the service role).
// Stateless; the transaction is the caller's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/transaction_base>

#include "cogo/metrics/alerts.h"

namespace cogo::metrics {

using Tenant = std::optional<std::string>;

[[nodiscard]] nlohmann::json BusLatency(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant);
[[nodiscard]] nlohmann::json BusDepth(pqxx::transaction_base& txn, const Tenant& tenant);
[[nodiscard]] nlohmann::json BusFailures(pqxx::transaction_base& txn, std::chrono::seconds window,
                                         std::chrono::seconds bucket, const Tenant& tenant);
// `daily_cap`: a tenant's daily cap in USD (the policy table's); empty when no policy is loaded.
[[nodiscard]] nlohmann::json Spend(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant,
                                   const std::function<double(const std::string&)>& daily_cap);
[[nodiscard]] nlohmann::json Decisions(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant);
// `workflow_id` nullopt: every workflow. `recent`: how many of the newest runs to list.
[[nodiscard]] nlohmann::json Workflows(pqxx::transaction_base& txn, std::chrono::seconds window, const Tenant& tenant,
                                       const std::optional<std::string>& workflow_id, int recent);
[[nodiscard]] bool WorkflowKnown(pqxx::transaction_base& txn, const std::string& workflow_id);
[[nodiscard]] nlohmann::json Alerts(pqxx::transaction_base& txn, const std::vector<AlertRule>& rules, int transitions);

// One round of a rule's samples across every tenant.
[[nodiscard]] std::vector<Sample> ReadSamples(pqxx::transaction_base& txn, const AlertRule& rule);

}  // namespace cogo::metrics
