#include "cogo/orchestrator/version_store.h"

#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/transaction>

#include <cstdio>
#include <ctime>
#include <set>

#include "cogo/db/connection.h"
#include "cogo/db/pool.h"

namespace cogo::orchestrator {
namespace {

using nlohmann::json;

// $1: agent id, '' for every agent. `since` comes back in epoch milliseconds.
constexpr const char* kLoadVersions = R"SQL(
SELECT agent_id, version, model, max_cost_usd::float8, max_tokens, ttl_ms, status, weight::float8,
       (extract(epoch FROM since) * 1000)::bigint
FROM agent_versions WHERE $1 = '' OR agent_id = $1 ORDER BY agent_id, version)SQL";

// The same rows of one agent, locked: operations on one agent take turns.
constexpr const char* kLockVersions = R"SQL(
SELECT agent_id, version, model, max_cost_usd::float8, max_tokens, ttl_ms, status, weight::float8,
       (extract(epoch FROM since) * 1000)::bigint
FROM agent_versions WHERE agent_id = $1 ORDER BY version FOR UPDATE)SQL";

// One routing version, if the table lacks it: active at 100 when its agent has no version yet.
// $1 agent, $2 version, $3 model, $4 max cost, $5 max tokens, $6 ttl ms.
constexpr const char* kSeedVersion = R"SQL(
WITH fresh AS (SELECT NOT EXISTS (SELECT 1 FROM agent_versions WHERE agent_id = $1) AS first),
ins AS (
  INSERT INTO agent_versions (agent_id, version, model, max_cost_usd, max_tokens, ttl_ms, status,
                              weight, created_by)
  SELECT $1, $2, $3, $4, $5, $6, CASE WHEN first THEN 'active' ELSE 'proposed' END,
         CASE WHEN first THEN 100 ELSE 0 END, 'routing'
  FROM fresh
  ON CONFLICT (agent_id, version) DO NOTHING
  RETURNING agent_id, version, status, weight)
INSERT INTO agent_version_events (agent_id, version, action, status_after, weight_after, actor, reason)
SELECT agent_id, version, 'seeded', status, weight, 'routing', 'named by a routing rule' FROM ins)SQL";

// $1..$6 as kSeedVersion, $7 status, $8 weight, $9 created_by, $10 note.
constexpr const char* kInsertVersion = R"SQL(
INSERT INTO agent_versions (agent_id, version, model, max_cost_usd, max_tokens, ttl_ms, status,
                            weight, created_by, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10))SQL";

// $1 agent, $2 version, $3 status, $4 weight.
constexpr const char* kUpdateVersion = R"SQL(
UPDATE agent_versions SET status = $3, weight = $4, since = now()
WHERE agent_id = $1 AND version = $2)SQL";

// $1 agent, $2 version, $3 action, $4 status before, $5 status after, $6 weight before,
// $7 weight after, $8 actor, $9 reason, $10 message id (0: none). The optional values travel
// as text: g++ 12 misjudges std::optional<double> in libpqxx's parameters as uninitialised.
constexpr const char* kAddEvent = R"SQL(
INSERT INTO agent_version_events (agent_id, version, action, status_before, status_after,
                                  weight_before, weight_after, actor, reason, message_id)
VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8, $9, nullif($10::bigint, 0)))SQL";

// Figures of decisions since $1 (timestamptz text), of agent $2 ('' = all) and version $3
// ('' = all). Failure rate over finished executions, quality over judged decisions.
constexpr const char* kVersionFigures = R"SQL(
SELECT agent_id, version, jsonb_build_object(
  'decisions', count(*),
  'judged', count(correct),
  'correct', count(*) FILTER (WHERE correct),
  'failed', count(*) FILTER (WHERE outcome = 'failed'),
  'pending', count(*) FILTER (WHERE outcome = 'pending'),
  'failure_rate', round((count(*) FILTER (WHERE outcome = 'failed'))::numeric
                        / nullif(count(*) FILTER (WHERE outcome IN ('done', 'failed')), 0), 4),
  'quality', round((count(*) FILTER (WHERE correct))::numeric / nullif(count(correct), 0), 4),
  'latency_p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms::float8)
                            FILTER (WHERE outcome IN ('done', 'failed')))::bigint,
  'latency_p90_ms', round(percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_ms::float8)
                            FILTER (WHERE outcome IN ('done', 'failed')))::bigint,
  'queue_wait_p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY queue_wait_ms::float8)
                               FILTER (WHERE outcome IN ('done', 'failed')))::bigint,
  'cost_per_request_usd', round(avg(cost_usd) FILTER (WHERE outcome IN ('done', 'failed')), 8)
)::text
FROM decision_outcomes
WHERE decided_at >= $1::timestamptz AND ($2 = '' OR agent_id = $2) AND ($3 = '' OR version = $3)
GROUP BY agent_id, version)SQL";

// The experiments: upgrade runs still live, by the agent they upgrade.
constexpr const char* kLiveUpgrades = R"SQL(
SELECT parameters->>'agentId', jsonb_build_object(
  'runId', id, 'status', status, 'node', cursor_node, 'candidate', parameters->>'candidateVersion',
  'baseline', parameters->>'baselineVersion', 'canaryWeight', parameters->'canaryWeight',
  'startedAt', created_at)::text
FROM workflow_runs WHERE workflow_id = 'upgrade' AND status IN ('running', 'waiting') ORDER BY id)SQL";

constexpr const char* kNoFigures = R"({"decisions":0,"judged":0,"correct":0,"failed":0,"pending":0,)"
                                   R"("failure_rate":null,"quality":null,"latency_p50_ms":null,)"
                                   R"("latency_p90_ms":null,"queue_wait_p50_ms":null,"cost_per_request_usd":null})";

AgentVersion ReadVersion(const pqxx::row& row) {
  AgentVersion v;
  v.agent_id = row[0].as<std::string>();
  v.version = row[1].as<std::string>();
  v.model = row[2].as<std::string>();
  v.budget = {row[3].as<double>(), row[4].as<int64_t>()};
  v.ttl = std::chrono::milliseconds(row[5].as<int64_t>());
  v.status = ParseStatus(row[6].as<std::string>()).value_or(VersionStatus::retired);
  v.weight = row[7].as<double>();
  v.since = policy::TimePoint(std::chrono::milliseconds(row[8].as<int64_t>()));
  return v;
}

std::string IsoTime(policy::TimePoint t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", text, static_cast<int>(ms % 1000));
  return out;
}

}  // namespace

int SeedVersions(pqxx::connection& conn, const RoutingTable& table) {
  pqxx::work txn(conn);
  // Brains starting together seed one after the other, so an agent gets one active version.
  txn.exec("SELECT pg_advisory_xact_lock(hashtext('cogo_seed_agent_versions'))");
  int inserted = 0;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& [intent, rule] : table.rules()) {
    if (rule.agent_id.empty() || !seen.insert({rule.agent_id, rule.version}).second) continue;
    inserted += static_cast<int>(txn.exec_params(kSeedVersion, rule.agent_id, rule.version, rule.model,
                                                 rule.budget.max_cost_usd, rule.budget.max_tokens,
                                                 static_cast<int64_t>(rule.ttl.count()))
                                     .affected_rows());
  }
  txn.commit();
  return inserted;
}

std::vector<AgentVersion> LoadVersions(pqxx::transaction_base& txn, const std::string& agent_id) {
  std::vector<AgentVersion> out;
  for (const auto& row : txn.exec_params(kLoadVersions, agent_id)) out.push_back(ReadVersion(row));
  return out;
}

OpResult ApplyVersionOp(pqxx::transaction_base& txn, const VersionOp& op, const Actor& actor) {
  std::vector<AgentVersion> current;
  for (const auto& row : txn.exec_params(kLockVersions, op.agent_id)) current.push_back(ReadVersion(row));
  auto result = PlanVersionOp(current, op, std::chrono::system_clock::now());
  const auto* changes = std::get_if<std::vector<VersionChange>>(&result);
  if (changes == nullptr) return result;
  for (const auto& c : *changes) {
    const auto& a = c.after;
    if (!c.before) {
      txn.exec_params(kInsertVersion, a.agent_id, a.version, a.model, a.budget.max_cost_usd, a.budget.max_tokens,
                      static_cast<int64_t>(a.ttl.count()), StatusName(a.status), a.weight, actor.name, actor.reason);
    } else {
      txn.exec_params(kUpdateVersion, a.agent_id, a.version, StatusName(a.status), a.weight);
    }
    const std::optional<std::string> status_before =
        c.before ? std::optional<std::string>(StatusName(c.before->status)) : std::nullopt;
    const std::optional<std::string> weight_before =
        c.before ? std::optional<std::string>(std::to_string(c.before->weight)) : std::nullopt;
    txn.exec_params(kAddEvent, a.agent_id, a.version, c.event, status_before, StatusName(a.status), weight_before,
                    a.weight, actor.name, actor.reason, actor.message_id);
  }
  return result;
}

OpResult RunVersionOp(pqxx::connection& conn, const VersionOp& op, const Actor& actor, const RoutingTable* routing,
                      const policy::PolicyTable* policy_table) {
  if (op.action == VersionAction::propose && (routing == nullptr || policy_table == nullptr)) {
    throw std::invalid_argument("a proposal is checked against the routing rules and the policy");
  }
  try {
    pqxx::work txn(conn);
    auto result = ApplyVersionOp(txn, op, actor);
    const auto* changes = std::get_if<std::vector<VersionChange>>(&result);
    if (changes == nullptr) return result;
    if (op.action == VersionAction::propose) {
      if (auto refusal = CheckVersion(changes->front().after, *routing, *policy_table, std::chrono::system_clock::now())) {
        return *refusal;  // the transaction rolls back
      }
    }
    txn.commit();
    return result;
  } catch (const pqxx::unique_violation&) {
    // Two proposals of one new version at once: the primary key let one in.
    return OpRefusal{"version_exists", op.agent_id + " " + op.version + " exists already"};
  }
}

std::string ChangesJson(const std::vector<VersionChange>& changes) {
  json out = json::array();
  for (const auto& c : changes) {
    out.push_back({{"agent_id", c.after.agent_id},
                   {"version", c.after.version},
                   {"event", c.event},
                   {"before", c.before ? json{{"status", StatusName(c.before->status)}, {"weight", c.before->weight}}
                                       : json(nullptr)},
                   {"after", json::parse(VersionJson(c.after))}});
  }
  return out.dump();
}

std::string VersionJson(const AgentVersion& v) {
  return json{{"agent_id", v.agent_id},
              {"version", v.version},
              {"model", v.model},
              {"budget", {{"maxCostUsd", v.budget.max_cost_usd}, {"maxTokens", v.budget.max_tokens}}},
              {"ttl_ms", v.ttl.count()},
              {"status", StatusName(v.status)},
              {"weight", v.weight},
              {"since", IsoTime(v.since)}}
      .dump();
}

std::string VersionFiguresJson(pqxx::transaction_base& txn, const std::string& agent_id, const std::string& version,
                               const std::string& since_sql) {
  const auto rows = txn.exec_params(kVersionFigures, since_sql, agent_id, version);
  return rows.empty() ? kNoFigures : rows[0][2].as<std::string>();
}

std::string AgentsStateJson(pqxx::transaction_base& txn, int window_s) {
  std::map<std::pair<std::string, std::string>, json> figures;
  const auto since = txn.exec_params("SELECT (now() - $1 * interval '1 second')::text", window_s)[0][0].as<std::string>();
  for (const auto& row : txn.exec_params(kVersionFigures, since, "", "")) {
    figures[{row[0].as<std::string>(), row[1].as<std::string>()}] = json::parse(row[2].as<std::string>());
  }
  json out = json::object();
  for (const auto& v : LoadVersions(txn)) {
    json entry = json::parse(VersionJson(v));
    const auto it = figures.find({v.agent_id, v.version});
    entry["live"] = it == figures.end() ? json::parse(kNoFigures) : it->second;
    out[v.agent_id]["versions"].push_back(std::move(entry));
    out[v.agent_id]["experiments"] = json::array();
  }
  for (const auto& row : txn.exec(kLiveUpgrades)) {
    const auto agent = row[0].is_null() ? std::string() : row[0].as<std::string>();
    if (out.contains(agent)) out[agent]["experiments"].push_back(json::parse(row[1].as<std::string>()));
  }
  return out.dump();
}

VersionBook::VersionBook(std::shared_ptr<db::ConnectionPool> pool, std::chrono::milliseconds refresh,
                         std::shared_ptr<spdlog::logger> logger)
    : pool_(std::move(pool)), refresh_(refresh), logger_(std::move(logger)) {}

VersionBook::Chosen VersionBook::Choose(const Plan& plan, const std::string& request_id) {
  const auto versions = Snapshot();
  if (versions) {
    const auto it = versions->find(plan.rule.agent_id);
    if (it != versions->end()) {
      if (const auto i = ChooseVersion(it->second, request_id)) {
        const auto& chosen = it->second[*i];
        return {WithVersion(plan, chosen), chosen.status == VersionStatus::canary};
      }
    }
  }
  return {plan, false};
}

void VersionBook::Invalidate() {
  std::lock_guard lock(mu_);
  stale_ = true;
}

std::shared_ptr<const std::map<std::string, std::vector<AgentVersion>>> VersionBook::Snapshot() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!stale_ && now - loaded_at_ < refresh_) return versions_;
  // Whatever happens, the next read is due a refresh later: a database outage costs one
  // failed read per interval, not one per decision.
  loaded_at_ = now;
  stale_ = false;
  try {
    auto fresh = std::make_shared<std::map<std::string, std::vector<AgentVersion>>>();
    pool_->With(
        [&](pqxx::connection& conn) {
          pqxx::read_transaction txn(conn);
          for (auto& v : LoadVersions(txn)) (*fresh)[v.agent_id].push_back(std::move(v));
        },
        db::ConnectionPool::Wait::never);
    versions_ = std::move(fresh);
  } catch (const std::exception& e) {
    logger_->warn("agent versions: could not read agent_versions, deciding with the versions read before: {}",
                  e.what());
  }
  return versions_;
}

std::shared_ptr<VersionBook> OpenVersionBook(const std::string& database_url, const RoutingTable& routing,
                                             std::chrono::milliseconds refresh, std::shared_ptr<spdlog::logger> logger) {
  const int seeded = SeedVersions(*db::Connect(database_url, "cogo-brain-versions"), routing);
  if (seeded > 0) logger->info("agent versions: {} seeded from the routing rules", seeded);
  return std::make_shared<VersionBook>(std::make_shared<db::ConnectionPool>(database_url, "cogo-brain-versions", 1),
                                       refresh, std::move(logger));
}

}  // namespace cogo::orchestrator
