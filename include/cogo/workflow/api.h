// The workflow REST API, mounted on the brain's JSON service (docs/api.md):
//   POST /api/workflows/execute {workflowId, parameters, tenant?}   -> 202 {runId, ...}
//   GET  /api/workflows/runs?workflowId=&status=&tenant=&before=&limit=
//   GET  /api/workflows/runs/{runId}                                  run, steps, gates, trail
//   POST /api/workflows/runs/{runId}/events {name, data}              -> 202 {signalId}
//   POST /api/workflows/runs/{runId}/cancel {reason?}                 -> 200
//   GET  /api/workflows/definitions[/{workflowId}], GET /api/workflows/stuck
// Tenant tokens act for and see their own tenant only; a service_role token names the tenant
// of a new run and sees every tenant. Thread-safe: the routes share the catalog (locked).
#pragma once

#include <memory>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/http/json_service.h"
#include "cogo/workflow/engine.h"

namespace cogo::workflow {

[[nodiscard]] std::vector<http::Route> WorkflowRoutes(http::JsonService& service,
                                                      std::shared_ptr<DefinitionCatalog> catalog,
                                                      std::shared_ptr<spdlog::logger> logger);

// {"definitions": [{workflowId, version, description, nodes}], "runs": {id: {status: n}},
// "stuck": n} for /api/orchestrator/state, within the caller's tenant scope.
[[nodiscard]] std::string WorkflowStateJson(pqxx::transaction_base& txn, const DefinitionCatalog& catalog,
                                            const std::optional<std::string>& scope);

}  // namespace cogo::workflow
