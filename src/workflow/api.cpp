#include "cogo/workflow/api.h"

#include <nlohmann/json.hpp>

#include <set>

#include "cogo/bus/keys.h"
#include "cogo/config/json_reader.h"
#include "cogo/workflow/runs.h"

namespace cogo::workflow {
namespace {

using nlohmann::json;

constexpr int kStuckAfterSeconds = 60;

http::Response FromRunError(const RunError& e) {
  const int status = e.kind() == RunError::Kind::not_found ? 404 : e.kind() == RunError::Kind::conflict ? 409 : 400;
  const std::string where = e.path().empty() ? "" : e.path() + ": ";
  return http::Error(status, e.reason(), where + e.what());
}

http::Response FromJsonError(const config::JsonError& e) {
  const auto refusal = config::ToRequestError(e);
  return http::Error(400, refusal.code, refusal.message);
}

json DefinitionSummary(const DefinitionCatalog::Entry& entry) {
  const Definition& d = *entry.definition;
  return {{"workflowId", d.id}, {"version", entry.version}, {"description", d.description},
          {"digest", d.digest}, {"nodes", d.nodes.size()}};
}

// The refusal a tenant token gets from a workflow only operators may act on.
// `what`: the workflow or run refused.
http::Response ServiceRoleRequired(const std::string& what) {
  return http::Error(403, "service_role_required",
                     what + " is for operators: starting, signalling and cancelling it need a service_role token");
}

bool IsServiceRole(const http::Request& req) {
  return req.claims() != nullptr && req.claims()->role == auth::Role::kServiceRole;
}

// nullopt when the caller may signal or cancel run `id`: a service_role token, or a run whose
// definition lets a tenant act on it (a run outside a tenant's scope stays the store's 404).
std::optional<http::Response> CheckRunAccess(http::JsonService& service, DefinitionCatalog& catalog,
                                             const http::Request& req, int64_t id) {
  if (IsServiceRole(req)) return std::nullopt;
  std::optional<bool> needs;
  service.Read(req, [&](pqxx::read_transaction& txn) { needs = RunNeedsServiceRole(txn, catalog, id, req.TenantScope()); });
  if (needs && *needs) return ServiceRoleRequired("run " + std::to_string(id));
  return std::nullopt;
}

std::optional<std::string> QueryText(const http::Request& req, std::string_view name) {
  const auto value = req.Query(name);
  if (!value || value->empty()) return std::nullopt;
  return std::string(*value);
}

}  // namespace

std::string WorkflowStateJson(pqxx::transaction_base& txn, const DefinitionCatalog& catalog,
                              const std::optional<std::string>& scope) {
  json definitions = json::array();
  for (const auto& entry : catalog.All()) definitions.push_back(DefinitionSummary(entry));
  return json{{"definitions", definitions},
              {"runs", json::parse(RunCountsJson(txn, scope))},
              {"stuck", json::parse(StuckRunsJson(txn, scope, kStuckAfterSeconds)).size()}}
      .dump();
}

std::vector<http::Route> WorkflowRoutes(http::JsonService& service, std::shared_ptr<DefinitionCatalog> catalog,
                                        std::shared_ptr<spdlog::logger> logger) {
  using http::Access;
  std::vector<http::Route> routes;

  routes.push_back({"POST", "/api/workflows/execute", Access::kAnyToken, "start a workflow run",
                    [&service, catalog, logger](const http::Request& req) -> http::Response {
    StartRequest start;
    std::string tenant;
    try {
      const auto doc = config::JsonDocument::Parse(req.body(), {32, false});
      const auto body = doc.root().AsObject();
      start.workflow_id = body.String("workflowId", {false, 128});
      if (auto p = body.Optional("parameters")) {
        start.parameters = json::parse(p->AsObject().value().Dump());
      }
      tenant = body.Has("tenant") ? body.Name("tenant", config::kTenantName) : "";
      body.Finish();
    } catch (const config::JsonError& e) {
      return FromJsonError(e);
    }
    if (const auto entry = catalog->Current(start.workflow_id);
        entry.definition && entry.definition->service_role_only && !IsServiceRole(req)) {
      return ServiceRoleRequired("the workflow " + start.workflow_id);
    }
    auto acting = http::ActingTenant(req, tenant, "the run's tenant");
    if (auto* refused = std::get_if<http::Response>(&acting)) return *refused;
    start.tenant = std::get<std::string>(acting);
    if (const auto key = req.Header("Idempotency-Key")) {
      if (!bus::ValidIdempotencyKey(*key)) {
        return http::Error(400, "invalid_idempotency_key", "Idempotency-Key must be 1..200 printable ASCII characters");
      }
      start.idempotency_key = std::string(*key);
    }
    try {
      Started started;
      service.pool().With([&](pqxx::connection& conn) { started = StartRun(conn, *catalog, start); });
      if (started.created) {
        logger->info("workflow run {} ({} v{}) started for tenant {}", started.run_id, start.workflow_id,
                     started.version, start.tenant);
      }
      return http::Json(started.created ? 202 : 200,
                        json{{"runId", started.run_id}, {"workflowId", start.workflow_id},
                             {"version", started.version}, {"created", started.created}}
                            .dump());
    } catch (const RunError& e) {
      return FromRunError(e);
    }
  }});

  routes.push_back({"GET", "/api/workflows/runs", Access::kAnyToken, "list runs (newest first, keyset by ?before=)",
                    [&service](const http::Request& req) -> http::Response {
    RunFilter filter;
    filter.tenant = QueryText(req, "tenant");
    if (const auto scope = req.TenantScope()) {
      if (filter.tenant && *filter.tenant != *scope) return http::Error(403, "tenant_mismatch", "tenant tokens list their own runs");
      filter.tenant = scope;
    }
    filter.workflow_id = QueryText(req, "workflowId");
    filter.status = QueryText(req, "status");
    static const std::set<std::string> kStatuses = {"running", "waiting", "succeeded", "failed", "cancelled", "timed_out"};
    if (filter.status && !kStatuses.count(*filter.status)) {
      return http::Error(400, "invalid_value", "status must be running, waiting, succeeded, failed, cancelled or timed_out");
    }
    if (const auto before = QueryText(req, "before")) {
      filter.before = http::ParseId(*before);
      if (*filter.before == 0) return http::Error(400, "invalid_value", "before must be a run id");
    }
    if (const auto limit = QueryText(req, "limit")) {
      const int64_t n = http::ParseId(*limit);
      if (n < 1 || n > 500) return http::Error(400, "out_of_range", "limit must be 1..500");
      filter.limit = static_cast<int>(n);
    }
    std::string out;
    service.Read(req, [&](pqxx::read_transaction& txn) { out = ListRunsJson(txn, filter); });
    return http::Json(200, out);
  }});

  routes.push_back({"GET", "/api/workflows/runs/{run_id}", Access::kAnyToken, "a run: steps, gates, trail",
                    [&service](const http::Request& req) -> http::Response {
    const int64_t id = http::ParseId(req.Param("run_id"));
    std::optional<std::string> view;
    if (id > 0) service.Read(req, [&](pqxx::read_transaction& txn) { view = RunViewJson(txn, id, req.TenantScope()); });
    return view ? http::Json(200, *view) : http::Error(404, "not_found", "no such run");
  }});

  routes.push_back({"POST", "/api/workflows/runs/{run_id}/events", Access::kAnyToken,
                    "deliver an external event to a run",
                    [&service, catalog](const http::Request& req) -> http::Response {
    const int64_t id = http::ParseId(req.Param("run_id"));
    if (id == 0) return http::Error(404, "not_found", "no such run");
    if (auto refused = CheckRunAccess(service, *catalog, req, id)) return *refused;
    std::string name;
    json data = json::object();
    try {
      const auto doc = config::JsonDocument::Parse(req.body(), {32, false});
      const auto body = doc.root().AsObject();
      name = body.Name("name", {"event name", 64, true});
      if (auto d = body.Optional("data")) data = json::parse(d->AsObject().value().Dump());
      body.Finish();
    } catch (const config::JsonError& e) {
      return FromJsonError(e);
    }
    try {
      int64_t signal = 0;
      service.pool().With([&](pqxx::connection& conn) { signal = DeliverSignal(conn, id, req.TenantScope(), name, data); });
      return http::Json(202, json{{"runId", id}, {"signalId", signal}}.dump());
    } catch (const RunError& e) {
      return FromRunError(e);
    }
  }});

  routes.push_back({"POST", "/api/workflows/runs/{run_id}/cancel", Access::kAnyToken,
                    "cancel a run and its in-flight messages",
                    [&service, catalog, logger](const http::Request& req) -> http::Response {
    const int64_t id = http::ParseId(req.Param("run_id"));
    if (id == 0) return http::Error(404, "not_found", "no such run");
    if (auto refused = CheckRunAccess(service, *catalog, req, id)) return *refused;
    std::string reason = "cancelled through the API";
    if (!req.body().empty()) {
      try {
        const auto doc = config::JsonDocument::Parse(req.body(), {8, false});
        const auto body = doc.root().AsObject();
        reason = body.StringOr("reason", reason, {false, 500});
        body.Finish();
      } catch (const config::JsonError& e) {
        return FromJsonError(e);
      }
    }
    try {
      service.pool().With([&](pqxx::connection& conn) { CancelRun(conn, id, req.TenantScope(), reason); });
      logger->info("workflow run {} cancelled (request {})", id, req.id());
      return http::Json(200, json{{"runId", id}, {"status", "cancelled"}}.dump());
    } catch (const RunError& e) {
      return FromRunError(e);
    }
  }});

  routes.push_back({"GET", "/api/workflows/definitions", Access::kAnyToken, "the loaded workflow definitions",
                    [catalog](const http::Request&) -> http::Response {
    json out = json::array();
    for (const auto& entry : catalog->All()) out.push_back(DefinitionSummary(entry));
    return http::Json(200, json{{"definitions", out}}.dump());
  }});

  routes.push_back({"GET", "/api/workflows/definitions/{workflow_id}", Access::kAnyToken, "one definition, as loaded",
                    [catalog](const http::Request& req) -> http::Response {
    const auto entry = catalog->Current(std::string(req.Param("workflow_id")));
    if (!entry.definition) return http::Error(404, "not_found", "no such workflow");
    json out = DefinitionSummary(entry);
    out["definition"] = json::parse(entry.definition->canonical_json);
    return http::Json(200, out.dump());
  }});

  routes.push_back({"GET", "/api/workflows/stuck", Access::kAnyToken,
                    "live runs that no message, wait or timer will advance",
                    [&service](const http::Request& req) -> http::Response {
    std::string out;
    service.Read(req, [&](pqxx::read_transaction& txn) { out = StuckRunsJson(txn, req.TenantScope(), kStuckAfterSeconds); });
    return http::Json(200, json{{"stuck", json::parse(out)}}.dump());
  }});
  return routes;
}

}  // namespace cogo::workflow
