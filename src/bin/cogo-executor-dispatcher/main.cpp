// cogo-executor-dispatcher: consumes (orchestrator, execute), enforces each message's
// `__assignment` against the policy table and the tenant's daily cap, and hands the work to its
// target route in the transaction that completes the execute message (docs/operations-executor.md).
#include <CLI/CLI.hpp>

#include "cogo/executor/dispatcher.h"
#include "cogo/http/health_listener.h"
#include "cogo/log/logging.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.concurrency = cogo::executor::kDefaultConcurrency;
  cogo::policy::PolicyFlag policy;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener(cogo::runtime::WorkerDaemon({
      "cogo-executor-dispatcher", "Admit execute messages under the policy table and hand them off", worker, false,
      [&](CLI::App& app) { cogo::policy::AddPolicyOption(app, policy); },
      [&](cogo::runtime::DaemonContext& ctx) -> cogo::runtime::Handler {
        cogo::executor::ConfigureExecutorWorker(worker);
        return cogo::executor::MakeExecutorHandler({ctx.options.database_url, cogo::policy::LoadPolicy(policy, *ctx.logger)},
                                                   cogo::log::Get(ctx.logger->name() + ".executor"));
      }})));
}
