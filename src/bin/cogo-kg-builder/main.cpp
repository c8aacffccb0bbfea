// cogo-kg-builder: the (kg, build) worker — entities and relations from a document's chunks
// into the graph tables with provenance (see include/cogo/kg/builder.h). The assignment's model
// picks the extractor: offline-extract runs the offline rules; other models go to the chat
// provider at --provider-base-url (without one, only offline-extract is served).
#include <CLI/CLI.hpp>

#include "cogo/http/health_listener.h"
#include "cogo/kg/builder.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/providers/factory.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "kg";
  worker.role = "build";
  worker.guards.require_assignment = true;
  cogo::providers::ProviderFlags provider;
  cogo::kg::BuilderOptions builder;
  cogo::policy::PolicyFlag policy;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener(cogo::runtime::WorkerDaemon({
      "cogo-kg-builder", "entities and relations for kg/build", worker, false,
      [&](CLI::App& app) {
        cogo::providers::AddProviderOptions(app, provider);
        cogo::policy::AddPolicyOption(app, policy);
        app.add_option("--reply-attempts", builder.reply_attempts, "chat extractor: asks per chunk before extraction_malformed")->check(CLI::Range(1, 5))->capture_default_str();
        app.add_option("--max-tokens", builder.max_tokens, "chat extractor: reply cap per chunk")->check(CLI::Range(16, 100000))->capture_default_str();
      },
      [&](cogo::runtime::DaemonContext& ctx) -> cogo::runtime::Handler {
        const auto table = cogo::policy::LoadPolicy(policy, *ctx.logger);
        std::shared_ptr<cogo::providers::ModelProvider> chat;
        if (!provider.base_url.empty()) chat = cogo::providers::MakeProvider(provider, cogo::providers::MakePricer(table->prices()), ctx.logger);
        auto pool = std::make_shared<cogo::db::ConnectionPool>(ctx.options.database_url, "cogo-kg-builder", worker.concurrency);
        return cogo::kg::MakeBuildHandler(chat, table, pool, builder, ctx.logger);
      }})));
}
