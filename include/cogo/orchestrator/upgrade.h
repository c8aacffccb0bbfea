// The acting steps of the upgrade workflow (config/workflows/upgrade.json), served by the brain
// on the bus route (orchestrator, upgrade). A step's payload names its action:
//   replay    {agentId, candidate, baseline, set?}  the labelled set `set` (<eval dir>/<set>.json)
//             decided once, and the requests the agent serves published to (orchestrator,
//             execute) pinned to each version, as children of the step's message
//   evaluate  {agentId, candidate, baseline, replay, latencySloMs?}  waits for those requests
//             to end (retried while some run), scores each version's (failure rate, latency,
//             cost, quality) and compares them; each version also checked against the policy
//   canary    {agentId, version, weight?}           the candidate takes `weight` % (10 default)
//   measure   {agentId, candidate, baseline, minDecisions?, latencySloMs?}  live figures of both
//             since the canary began, and the comparisons the live gate asserts
//   promote   {agentId, version, why?}              the candidate becomes the active version
//   rollback  {agentId, version, why?}              the candidate is retired, weight 0
//   (`why`: the review and gate outputs that led there; the change's recorded reason)
// Each completes with its figures as the step's output (what the gates read). Changes go
// through RunVersionOp as `workflow:<run id>` with the step message's id, and each action is an
// `upgrade_<action>` event on the step's trail. Re-running a step (a lost completion) finds the
// state it already made and succeeds again. Only runs of the operator tenant may act: a tenant
// token can start workflows, and must not steer agent versions. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/orchestrator/brain.h"
#include "cogo/runtime/daemon.h"
#include "cogo/runtime/handler.h"

namespace cogo::runtime {
struct WorkerOptions;
}

namespace cogo::orchestrator {

inline constexpr const char* kUpgradeRole = "upgrade";  // service "orchestrator"

struct UpgradeOptions {
  std::string operator_tenant = "ops";  // --upgrade-tenant: runs of this tenant may act
  std::string eval_dir = "config/eval";  // --eval-sets: where `set` names a file (<set>.json)
  int default_canary_weight = 10;
  int default_min_decisions = 20;
  int default_latency_slo_ms = 5000;
  // How long one attempt of the evaluate step waits for the replayed requests, and how often it
  // looks; still running then, the step is retried.
  std::chrono::milliseconds replay_wait{60000};
  std::chrono::milliseconds replay_poll{200};
};

[[nodiscard]] runtime::Handler MakeUpgradeHandler(BrainConfig config, UpgradeOptions options,
                                                  std::string database_url,
                                                  std::shared_ptr<spdlog::logger> logger);

// Appends the (orchestrator, upgrade) worker, its options copied from `base` (lease, poll),
// shard 0, two handler threads.
void AddUpgradeWorker(const BrainConfig& config, const UpgradeOptions& options, const runtime::WorkerOptions& base,
                      runtime::DaemonContext& ctx, std::vector<std::unique_ptr<runtime::Component>>& components);

}  // namespace cogo::orchestrator
