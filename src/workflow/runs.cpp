#include "cogo/workflow/runs.h"

#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/bus/bus.h"
#include "workflow/statements.h"

namespace cogo::workflow {
namespace {

using nlohmann::json;

std::string Correlation(int64_t run_id) { return "wf:" + std::to_string(run_id); }

bus::PublishRequest EngineMessage(const std::string& tenant, int64_t run_id, json payload,
                                  std::string idempotency_key) {
  bus::PublishRequest request;
  request.service = kEngineService;
  request.role = kEngineRole;
  request.tenant = tenant;
  payload["run_id"] = run_id;
  request.payload_json = payload.dump();
  request.max_attempts = 10;
  request.idempotency_key = std::move(idempotency_key);
  request.correlation_id = Correlation(run_id);
  return request;
}

// Locks the run; throws not_found when it is missing or outside the scope. Returns (tenant,
// status).
std::pair<std::string, std::string> LockRun(pqxx::transaction_base& txn, int64_t run_id,
                                            const std::optional<std::string>& scope) {
  const auto rows = txn.exec_params(sql::kLockRun, run_id);
  if (rows.empty() || (scope && rows[0][0].as<std::string>() != *scope)) {
    throw RunError(RunError::Kind::not_found, "not_found", "", "no such run");
  }
  return {rows[0][0].as<std::string>(), rows[0][3].as<std::string>()};
}

bool IsFinal(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled" || status == "timed_out";
}

}  // namespace

RunError::RunError(Kind kind, std::string reason, std::string path, const std::string& message)
    : std::runtime_error(message), kind_(kind), reason_(std::move(reason)), path_(std::move(path)) {}

Started StartRun(pqxx::connection& conn, const DefinitionCatalog& catalog, const StartRequest& request) {
  bus::Bus bus(conn);
  pqxx::work txn(conn);
  const auto started = StartRun(txn, bus, catalog, request);
  txn.commit();
  return started;
}

Started StartRun(pqxx::work& txn, bus::Bus& bus, const DefinitionCatalog& catalog, const StartRequest& request) {
  const auto entry = catalog.Current(request.workflow_id);
  if (!entry.definition) {
    throw RunError(RunError::Kind::invalid, "unknown_workflow", "workflowId", "no workflow named so");
  }
  if (auto error = CheckParameters(*entry.definition, request.parameters)) {
    throw RunError(RunError::Kind::invalid, error->reason, error->path, error->message);
  }
  const auto& limits = entry.definition->limits;
  const std::optional<std::string> key =
      request.idempotency_key.empty() ? std::nullopt : std::optional<std::string>(request.idempotency_key);
  const auto inserted = txn.exec_params(sql::kInsertRun, request.tenant, request.workflow_id, entry.version,
                                        request.parameters.dump(), limits.max_cost_usd, limits.max_tokens, key);
  if (inserted.empty()) {  // an idempotent repeat
    const auto id = txn.exec_params1(sql::kRunByKey, request.tenant, request.workflow_id, *key)[0].as<int64_t>();
    return {id, false, entry.version, 0};
  }
  const int64_t run_id = inserted[0][0].as<int64_t>();
  const auto published = bus.Publish(txn, EngineMessage(request.tenant, run_id, {{"kind", "start"}},
                                                        "wf-start:" + std::to_string(run_id)));
  return {run_id, true, entry.version, published.id};
}

int64_t DeliverSignal(pqxx::connection& conn, int64_t run_id, const std::optional<std::string>& scope,
                      const std::string& name, const json& data) {
  bus::Bus bus(conn);
  pqxx::work txn(conn);
  const auto [tenant, status] = LockRun(txn, run_id, scope);
  if (IsFinal(status)) throw RunError(RunError::Kind::conflict, "run_finished", "", "the run already ended " + status);
  const int64_t signal_id = txn.exec_params1(sql::kInsertSignal, run_id, name, data.dump())[0].as<int64_t>();
  (void)bus.Publish(txn, EngineMessage(tenant, run_id, {{"kind", "signal"}, {"signal_id", signal_id}},
                                       "wf-signal:" + std::to_string(signal_id)));
  txn.commit();
  return signal_id;
}

void CancelRun(pqxx::connection& conn, int64_t run_id, const std::optional<std::string>& scope,
               const std::string& reason) {
  bus::Bus bus(conn);
  pqxx::work txn(conn);
  const auto [tenant, status] = LockRun(txn, run_id, scope);
  if (IsFinal(status)) throw RunError(RunError::Kind::conflict, "run_finished", "", "the run already ended " + status);
  txn.exec_params0(sql::kFinishRun, run_id, "cancelled", "cancelled");
  txn.exec_params0(sql::kCancelSteps, run_id);
  for (const auto& row : txn.exec_params(sql::kLiveMessages, run_id)) {
    (void)bus.Cancel(txn, row[0].as<int64_t>(), "workflow_cancelled: " + reason);
  }
  // The audit row goes on the run's start message, beside workflow_started.
  const auto start = txn.exec_params1(sql::kStartMessage, Correlation(run_id));
  if (!start[0].is_null()) {
    bus.AddEvents(txn, {{start[0].as<int64_t>(), "workflow_cancelled",
                         json{{"run_id", run_id}, {"reason", reason}}.dump()}});
  }
  txn.commit();
}

std::optional<bool> RunNeedsServiceRole(pqxx::transaction_base& txn, DefinitionCatalog& catalog, int64_t run_id,
                                        const std::optional<std::string>& scope) {
  const auto rows = txn.exec_params(sql::kRunWorkflow, run_id);
  if (rows.empty() || (scope && rows[0][0].as<std::string>() != *scope)) return std::nullopt;
  return catalog.Pinned(txn, rows[0][1].as<std::string>(), rows[0][2].as<int>())->service_role_only;
}

std::optional<std::string> RunViewJson(pqxx::transaction_base& txn, int64_t run_id,
                                       const std::optional<std::string>& scope) {
  const auto rows = txn.exec_params(sql::kRunView, run_id);
  if (rows.empty()) return std::nullopt;
  std::string view = rows[0][0].as<std::string>();
  if (scope && json::parse(view).at("tenant") != *scope) return std::nullopt;
  return view;
}

std::string ListRunsJson(pqxx::transaction_base& txn, const RunFilter& filter) {
  const auto runs = json::parse(txn.exec_params1(sql::kListRuns, filter.tenant, filter.workflow_id, filter.status,
                                                 filter.before, filter.limit)[0]
                                    .as<std::string>());
  json out = {{"runs", runs}, {"next", nullptr}};
  if (static_cast<int>(runs.size()) == filter.limit && !runs.empty()) out["next"] = runs.back().at("runId");
  return out.dump();
}

std::string RunCountsJson(pqxx::transaction_base& txn, const std::optional<std::string>& scope) {
  return txn.exec_params1(sql::kRunCounts, scope)[0].as<std::string>();
}

std::string StuckRunsJson(pqxx::transaction_base& txn, const std::optional<std::string>& scope, double min_age_s) {
  return txn.exec_params1(sql::kStuckRuns, scope, min_age_s)[0].as<std::string>();
}

}  // namespace cogo::workflow
