// cogo-codegen-service: the (codegen, generate) worker — edits.json for a task, from its own
// `edits` or from a model through the chat provider (see include/cogo/codegen/service.h).
#include <CLI/CLI.hpp>

#include "cogo/codegen/service.h"
#include "cogo/http/health_listener.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/providers/factory.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "codegen";
  worker.role = "generate";
  cogo::providers::ProviderFlags provider;
  cogo::codegen::CodegenOptions codegen;
  cogo::policy::PolicyFlag policy;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener(cogo::runtime::WorkerDaemon({
      "cogo-codegen-service", "edits.json for codegen/generate, from the task or a model", worker, false,
      [&](CLI::App& app) {
        cogo::providers::AddProviderOptions(app, provider);
        cogo::codegen::AddRepoAndArtifactOptions(app, codegen.repo_roots, codegen.artifacts_dir);
        cogo::policy::AddPolicyOption(app, policy);
        app.add_option("--max-tokens", codegen.max_tokens, "reply cap (the budget caps it further)")->check(CLI::Range(1, 1000000))->capture_default_str();
        app.add_option("--reply-attempts", codegen.reply_attempts, "model calls per task before it fails")->check(CLI::Range(1, 10))->capture_default_str();
      },
      [&](cogo::runtime::DaemonContext& ctx) -> cogo::runtime::Handler {
        const auto table = cogo::policy::LoadPolicy(policy, *ctx.logger);
        auto model = cogo::providers::MakeProvider(provider, cogo::providers::MakePricer(table->prices()), ctx.logger);
        return cogo::codegen::MakeCodegenHandler(model, table, codegen, ctx.logger);
      }})));
}
