// cogo-orchestrator-brain's parts: the (orchestrator, decide) handler — routing rules, optional
// LLM classification, the decision recorded on the trail (`decided`, copied into `decisions`
// by sql/004) and the (orchestrator, execute) hand-off committed with the completion — and the
// REST API as routes on an http::JsonService. Thread-safe: the handler runs on many worker
// threads; the routes run on the service's thread pool with its pooled connections.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/http/json_service.h"
#include "cogo/orchestrator/routing.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/handler.h"
#include "cogo/runtime/worker.h"

namespace cogo::db {
class ConnectionPool;
}
namespace cogo::workflow {
class DefinitionCatalog;
}

namespace cogo::orchestrator {

class VersionBook;

// What both the decide handler and the REST server decide with. Immutable once built.
struct BrainConfig {
  std::shared_ptr<const RoutingTable> routing;
  std::shared_ptr<const policy::PolicyTable> policy;
  std::string policy_json;                       // the policy file, for the state snapshot
  std::shared_ptr<providers::ModelProvider> classifier;  // null: no classification
  int execute_max_attempts = 5;                  // of each (orchestrator, execute) message
  std::shared_ptr<workflow::DefinitionCatalog> workflows;  // null: no workflow API
  std::shared_ptr<VersionBook> versions;  // agent versions by weight; null: the rules' versions
};

// Classifies `intent` through the provider into one of the table's intents. Usage (priced
// by the provider) goes to `usage`. Throws providers::ProviderError.
[[nodiscard]] std::optional<std::string> Classify(providers::ModelProvider& provider,
                                                  const RoutingTable& table, const std::string& intent,
                                                  const std::string& payload_json,
                                                  const providers::CallControl& control,
                                                  policy::Usage* usage);

// Decide, asking the classifier when no rule matches and it is enabled. Usage goes to `usage`
// (may be null). Throws providers::ProviderError.
[[nodiscard]] DecideResult DecideWithClassifier(const BrainConfig& config, const std::string& intent,
                                                const std::string& payload_json,
                                                const providers::CallControl& control, policy::Usage* usage);

// The decide handler. Payload `{tenant, intent, payload, ...}` (the edge's); completes with the
// plan as its result and one (orchestrator, execute) follow-up on the same tenant and shard,
// correlation_id = the decide message's id. Unknown intent -> permanent `unknown_intent`.
// A plan that names a workflow instead starts a run of it (parameters = the payload; through
// `pool`) and completes with `workflow_run: {run_id, workflow_id, version}`; parameters the
// definition refuses fail the message with the reason (missing_key, wrong_type, ...).
[[nodiscard]] runtime::Handler MakeDecideHandler(BrainConfig config, std::shared_ptr<db::ConnectionPool> pool,
                                                 std::shared_ptr<spdlog::logger> logger);

// The decide worker's options: `worker` (the daemon's flags) with outcomes that do not wait for
// the WAL flush, which would otherwise sit in front of every request's execute hop. A decision
// (the plan, its execute message, its event) is acted on only by later transactions on the bus;
// the first durable commit after it (at the latest the request's result) flushes it too, as the
// WAL is written in order. A crash before that loses the decision with everything that followed
// it, and the decide message is decided again (the same plan and agent version: chosen by its id).
[[nodiscard]] runtime::WorkerOptions DecideWorkerOptions(runtime::WorkerOptions worker);

// Routing rules that name a workflow the catalog (null: none) does not have, or one only a
// service_role token may start (`"access": "service_role"`). Empty when fine.
[[nodiscard]] std::vector<std::string> CheckWorkflowRules(const RoutingTable& table,
                                                          const workflow::DefinitionCatalog* catalog);

struct BrainApiOptions {
  int shards = 1;                      // execute messages the API publishes: hash(tenant) % shards
  size_t max_body_bytes = 256 * 1024;  // plan/execute bodies; larger: 413 body_too_large
};

// The REST API as routes for `service` (which must outlive them), every one behind a JWT:
//   POST /api/orchestrator/plan     service_role   {intent, payload?, tenant?} -> {plan, assignment}
//   POST /api/orchestrator/execute  service_role   {tenant, intent | plan, payload?} -> 202 {ids};
//                                                  a workflow plan -> 202 {runId, workflowId, version}
//   GET  /api/orchestrator/state    service_role   queues, workers, failures, routing, policy,
//                                                  agents (versions, weights, live figures over 1 h)
//   GET  /api/messages/{id}         any token      a request view; another tenant's id is 404
[[nodiscard]] std::vector<http::Route> BrainRoutes(http::JsonService& service, BrainApiOptions options,
                                                   BrainConfig config,
                                                   std::shared_ptr<spdlog::logger> logger);

}  // namespace cogo::orchestrator
