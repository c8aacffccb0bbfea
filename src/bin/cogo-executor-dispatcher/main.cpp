// cogo-executor-dispatcher: consumes (orchestrator, execute), enforces each message's
// `__assignment` against the policy table and the tenant's daily cap, and hands the work to its
// target route in the transaction that completes the execute message (docs/operations-executor.md).
#include <CLI/CLI.hpp>

#include "cogo/executor/dispatcher.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  std::string policy_file = "config/policy.example.json";
  return cogo::runtime::RunWorkerDaemon(argc, argv, {
      "cogo-executor-dispatcher", "Admit execute messages under the policy table and hand them off", worker, false,
      [&](CLI::App& app) {
        app.add_option("--policy", policy_file, "policy table (JSON, docs/policy.md)")
            ->envname("COGO_POLICY")
            ->capture_default_str();
      },
      [&](cogo::runtime::DaemonContext& ctx) -> cogo::runtime::Handler {
        auto policy = cogo::policy::LoadPolicyFile(policy_file);
        ctx.logger->info("policy table {} loaded", policy_file);
        cogo::executor::ConfigureExecutorWorker(worker);
        return cogo::executor::MakeExecutorHandler(
            {ctx.options.database_url, policy}, cogo::log::Get(ctx.logger->name() + ".executor"));
      }});
}
