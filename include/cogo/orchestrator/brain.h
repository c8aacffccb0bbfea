// cogo-orchestrator-brain's parts: the (orchestrator, decide) handler — routing rules, optional
// LLM classification, the decision recorded on the trail (`decided`, copied into `decisions`
// by sql/004) and the (orchestrator, execute) hand-off committed with the completion — and the
// REST server (plan, execute, state, messages). Thread-safe: the handler runs on many worker
// threads; the server serves requests on its own thread pool with pooled connections.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "cogo/orchestrator/routing.h"
#include "cogo/policy/policy_table.h"
#include "cogo/providers/provider.h"
#include "cogo/runtime/daemon.h"
#include "cogo/runtime/worker.h"

namespace cogo::orchestrator {

// What both the decide handler and the REST server decide with. Immutable once built.
struct BrainConfig {
  std::shared_ptr<const RoutingTable> routing;
  std::shared_ptr<const policy::PolicyTable> policy;
  std::string policy_json;                       // the policy file, for the state snapshot
  std::shared_ptr<providers::ModelProvider> classifier;  // null: no classification
  int execute_max_attempts = 5;                  // of each (orchestrator, execute) message
};

// Classifies `intent` through the provider into one of the table's intents. Usage (priced
// by the provider) goes to `usage`. Throws providers::ProviderError.
[[nodiscard]] std::optional<std::string> Classify(providers::ModelProvider& provider,
                                                  const RoutingTable& table, const std::string& intent,
                                                  const std::string& payload_json,
                                                  const providers::CallControl& control,
                                                  policy::Usage* usage);

// The decide handler. Payload `{tenant, intent, payload, ...}` (the edge's); completes with the
// plan as its result and one (orchestrator, execute) follow-up on the same tenant and shard,
// correlation_id = the decide message's id. Unknown intent -> permanent `unknown_intent`.
[[nodiscard]] runtime::Handler MakeDecideHandler(BrainConfig config,
                                                 std::shared_ptr<spdlog::logger> logger);

struct BrainServerOptions {
  std::string database_url;
  std::string host = "127.0.0.1";  // --listen-host / COGO_BRAIN_HOST
  int port = 8781;                 // --port / COGO_BRAIN_PORT; 0 = any free port
  int threads = 4;
  int shards = 1;                  // execute messages published by the API: hash(tenant) % shards
  size_t max_body_bytes = 256 * 1024;
};

// POST /api/orchestrator/plan, POST /api/orchestrator/execute, GET /api/orchestrator/state,
// GET /api/messages/{id}, /healthz, /readyz. Errors are `{error, message}` like the edge's.
class BrainServer final : public runtime::Component {
 public:
  BrainServer(BrainServerOptions options, BrainConfig config, std::shared_ptr<spdlog::logger> logger);
  ~BrainServer() override;
  void Start() override;
  void Drain() override;
  [[nodiscard]] int port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogo::orchestrator
