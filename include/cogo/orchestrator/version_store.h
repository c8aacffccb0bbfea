// Agent versions in PostgreSQL (sql/016): seeding from the routing rules, reading, applying an
// operation (versions.h PlanVersionOp) under the agent's row locks with every change written to
// agent_version_events, the live figures per version, and the brain's cached VersionBook that
// picks the version of each decision. Free functions use the caller's transaction; VersionBook
// is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>
#include <spdlog/logger.h>

#include "cogo/orchestrator/versions.h"
#include "cogo/policy/policy_table.h"

namespace cogo::db {
class ConnectionPool;
}

namespace cogo::orchestrator {

// Inserts each agent version a rule names that the table does not have: active at 100 % when
// the agent has no version yet, else proposed (an edited routing file proposes; the operator
// promotes). Rows already there are never changed. Returns how many were inserted.
int SeedVersions(pqxx::connection& conn, const RoutingTable& table);

// Every version of `agent_id` (every agent when empty), by agent and version.
[[nodiscard]] std::vector<AgentVersion> LoadVersions(pqxx::transaction_base& txn, const std::string& agent_id = "");

// Who acts and why, for agent_version_events.
struct Actor {
  std::string name;        // the token's subject, cli:<user>, workflow:<run>
  std::string reason;
  int64_t message_id = 0;  // the bus message that acted (an upgrade step), 0 for none
};

// Locks the agent's rows, plans `op` against them and writes the changes and their events.
// The caller commits.
[[nodiscard]] OpResult ApplyVersionOp(pqxx::transaction_base& txn, const VersionOp& op, const Actor& actor);

// ApplyVersionOp in a transaction of its own, committed unless refused: by the plan, or, for a
// proposal, by CheckVersion against `routing` and `policy` (nothing is written then; a
// proposal without them throws std::invalid_argument).
[[nodiscard]] OpResult RunVersionOp(pqxx::connection& conn, const VersionOp& op, const Actor& actor,
                                    const RoutingTable* routing, const policy::PolicyTable* policy);

// [{agent_id, version, event, before: {status, weight} | null, after: VersionJson}]
[[nodiscard]] std::string ChangesJson(const std::vector<VersionChange>& changes);

// A version as JSON: {agent_id, version, model, budget, ttl_ms, status, weight, since}.
[[nodiscard]] std::string VersionJson(const AgentVersion& version);

// Live figures of one version's decisions since `since` (decision_outcomes): decisions,
// judged, correct, failed, pending, failure_rate, quality, latency_p50_ms, latency_p90_ms,
// queue_wait_p50_ms, cost_per_request_usd (rates NULL when nothing is judged).
[[nodiscard]] std::string VersionFiguresJson(pqxx::transaction_base& txn, const std::string& agent_id,
                                             const std::string& version, const std::string& since_sql);

// {"<agent>": {"versions": [version + "live": figures over the last `window_s` seconds],
//              "experiments": [its live upgrade runs: runId, status, node, candidate, baseline,
//                              canaryWeight, startedAt]}}
// for /api/orchestrator/state and `cogo agents list`.
[[nodiscard]] std::string AgentsStateJson(pqxx::transaction_base& txn, int window_s);

// The versions the decide path chooses from, read from the table at most every `refresh`
// (a change made through this brain's API is seen at once: Invalidate). Until the first read
// succeeds, and for agents without a weighted version, plans keep the routing rule's version.
class VersionBook {
 public:
  VersionBook(std::shared_ptr<db::ConnectionPool> pool, std::chrono::milliseconds refresh,
              std::shared_ptr<spdlog::logger> logger);

  struct Chosen {
    Plan plan;
    bool canary = false;
  };
  // The plan served by the version `request_id` falls on.
  [[nodiscard]] Chosen Choose(const Plan& plan, const std::string& request_id);
  void Invalidate();

 private:
  std::shared_ptr<const std::map<std::string, std::vector<AgentVersion>>> Snapshot();

  std::shared_ptr<db::ConnectionPool> pool_;
  std::chrono::milliseconds refresh_;
  std::shared_ptr<spdlog::logger> logger_;
  std::mutex mu_;
  std::shared_ptr<const std::map<std::string, std::vector<AgentVersion>>> versions_;
  std::chrono::steady_clock::time_point loaded_at_{};
  bool stale_ = true;
};

// Seeds agent_versions from `routing` (SeedVersions) and returns the book the brain decides
// with, reading through a connection of its own. Throws when the database cannot be reached.
[[nodiscard]] std::shared_ptr<VersionBook> OpenVersionBook(const std::string& database_url, const RoutingTable& routing,
                                                           std::chrono::milliseconds refresh,
                                                           std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::orchestrator
