// cogo-orchestrator-brain: the (orchestrator, decide) worker, the workflow engine's workers
// (orchestrator, workflow) and (orchestrator, notify), the upgrade steps' (orchestrator,
// upgrade), and the orchestrator, agent-version and workflow REST
// API (see include/cogo/orchestrator/brain.h, include/cogo/workflow/), on 127.0.0.1:8781 by
// default, every call behind a JWT signed with COGO_JWT_SECRET (or the file
// COGO_JWT_SECRET_FILE). Webhooks are signed with COGO_NOTIFY_SECRET. Refuses to start without
// the JWT secret, when a routing rule would be rejected by the policy table or names a workflow
// it does not have, or when a workflow definition is invalid.
#include <CLI/CLI.hpp>

#include "cogo/artifacts/api.h"
#include "cogo/auth/secret.h"
#include "cogo/config/files.h"
#include "cogo/db/pool.h"
#include "cogo/http/health_listener.h"
#include "cogo/kg/api.h"
#include "cogo/orchestrator/agents_api.h"
#include "cogo/orchestrator/brain.h"
#include "cogo/orchestrator/upgrade.h"
#include "cogo/orchestrator/version_store.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/providers/factory.h"
#include "cogo/rag/api.h"
#include "cogo/runtime/worker_component.h"
#include "cogo/workflow/api.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "orchestrator";
  worker.role = "decide";
  cogo::orchestrator::BrainApiOptions api;
  cogo::http::JsonServiceOptions http;
  http.port = 8781;
  cogo::providers::ProviderFlags provider;
  std::string routing = "config/routing.example.json";
  cogo::policy::PolicyFlag policy;
  cogo::workflow::EngineOptions engine;
  std::string artifacts = "artifacts";
  int versions_refresh_ms = 1000;
  cogo::orchestrator::UpgradeOptions upgrade;
  return cogo::runtime::RunDaemon(argc, argv, {
      "cogo-orchestrator-brain", "decide worker, workflow engine and orchestrator REST API",
      [&](CLI::App& app) {
        cogo::runtime::AddWorkerOptions(app, worker, false);
        cogo::providers::AddProviderOptions(app, provider);
        app.add_option("--routing", routing, "routing rules (JSON)")->envname("COGO_ROUTING")->capture_default_str();
        cogo::policy::AddPolicyOption(app, policy);
        app.add_option("--workflows", engine.definitions_dir, "directory of workflow definitions (*.json; default ./config/workflows, else the installed ones)")->envname("COGO_WORKFLOWS");
        app.add_option("--workflow-concurrency", engine.concurrency, "handler threads of the workflow and notify workers")->check(CLI::Range(1, 64))->capture_default_str();
        cogo::http::AddHttpOptions(app, http, "COGO_BRAIN");
        app.add_option("--artifacts-dir", artifacts, "task artifacts served under /api/artifacts")->envname("COGO_ARTIFACTS_DIR")->capture_default_str();
        app.add_option("--versions-refresh-ms", versions_refresh_ms, "how often the decide path rereads agent versions and weights")->check(CLI::Range(10, 600000))->capture_default_str();
        app.add_option("--upgrade-tenant", upgrade.operator_tenant, "the tenant whose workflow runs may change agent versions")->capture_default_str();
        app.add_option("--eval-sets", upgrade.eval_dir, "directory of evaluation sets the upgrade workflow names")->capture_default_str();
        app.add_option("--api-shards", api.shards, "shards for execute messages the API publishes")->check(CLI::Range(1, 1024))->capture_default_str();
      },
      [&](cogo::runtime::DaemonContext& ctx) {
        cogo::orchestrator::BrainConfig config;
        config.routing = cogo::orchestrator::LoadRoutingFile(routing);
        config.policy = cogo::policy::LoadPolicy(policy, *ctx.logger);
        config.policy_json = cogo::config::ReadFile(policy.path);
        const auto problems = cogo::orchestrator::CheckAgainstPolicy(
            *config.routing, *config.policy, std::chrono::system_clock::now());
        if (!problems.empty()) throw std::runtime_error(routing + " against " + policy.path + ": " + problems.front());
        if (config.routing->classifier().enabled) {
          config.classifier = cogo::providers::MakeProvider(
              provider, cogo::providers::MakePricer(config.policy->prices()), ctx.logger);
        }
        config.workflows = cogo::workflow::LoadCatalog(engine.definitions_dir, ctx.options.database_url);
        const auto unknown = cogo::orchestrator::CheckWorkflowRules(*config.routing, config.workflows.get());
        if (!unknown.empty()) throw std::runtime_error(routing + ": " + unknown.front());
        config.versions = cogo::orchestrator::OpenVersionBook(ctx.options.database_url, *config.routing,
                                                              std::chrono::milliseconds(versions_refresh_ms), ctx.logger);
        http.authenticate = cogo::http::BearerJwt(cogo::auth::RequiredSecret("COGO_JWT_SECRET"));
        http.database_url = ctx.options.database_url;
        http.registry = &ctx.registry;
        http.max_body_bytes = api.max_body_bytes * 4;  // a little over still gets a precise 413
        // /readyz says ready only once the brain's workers are (filled in below, before Start).
        auto workers = std::make_shared<std::vector<const cogo::runtime::Component*>>();
        http.workers_ready = [workers] { return cogo::http::ComponentsReady(*workers); };
        auto rest = std::make_unique<cogo::http::JsonService>("cogo-orchestrator-brain", http, ctx.logger);
        rest->Add(cogo::orchestrator::BrainRoutes(*rest, api, config, ctx.logger));
        rest->Add(cogo::workflow::WorkflowRoutes(*rest, config.workflows, ctx.logger));
        rest->Add(cogo::artifacts::ArtifactRoutes(std::make_shared<cogo::artifacts::ArtifactStore>(artifacts)));
        rest->Add(cogo::orchestrator::AgentRoutes(*rest, config.routing, config.policy, config.versions, ctx.logger));
        rest->Add(cogo::rag::RagRoutes(*rest, {}, ctx.logger));
        rest->Add(cogo::kg::KgRoutes(*rest));
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(cogo::runtime::MakeWorkerComponent(
            cogo::orchestrator::DecideWorkerOptions(worker),
            cogo::orchestrator::MakeDecideHandler(
                config, std::make_shared<cogo::db::ConnectionPool>(ctx.options.database_url, "cogo-brain-decide", 2),
                ctx.logger),
            ctx));
        cogo::workflow::AddEngineWorkers(config.workflows, worker, engine, ctx, components);
        cogo::orchestrator::AddUpgradeWorker(config, upgrade, worker, ctx, components);
        for (const auto& c : components) workers->push_back(c.get());
        components.push_back(std::move(rest));
        return components;
      }});
}
