// cogo-gateway-chat: the (gateway, chat) worker — chat completions through a model provider,
// metered against each message's assignment (see include/cogo/gateway/chat.h).
#include <CLI/CLI.hpp>

#include "cogo/gateway/chat.h"
#include "cogo/http/health_listener.h"
#include "cogo/policy/policy_flag.h"
#include "cogo/providers/factory.h"
#include "cogo/runtime/worker_component.h"

int main(int argc, char** argv) {
  cogo::runtime::WorkerOptions worker;
  worker.service = "gateway";
  worker.role = "chat";
  worker.guards.require_assignment = true;
  cogo::providers::ProviderFlags provider;
  cogo::gateway::ChatOptions chat;
  cogo::policy::PolicyFlag policy;
  return cogo::runtime::RunDaemon(argc, argv, cogo::http::WithHealthListener(cogo::runtime::WorkerDaemon({
      "cogo-gateway-chat", "chat completions for gateway/chat through a model provider", worker, false,
      [&](CLI::App& app) {
        cogo::providers::AddProviderOptions(app, provider);
        cogo::policy::AddPolicyOption(app, policy);
        app.add_option("--served-models", worker.guards.served_models, "models this worker serves (empty: any)")->envname("COGO_SERVED_MODELS");
        app.add_option("--max-tokens", chat.max_tokens, "reply cap (the budget caps it further)")->check(CLI::Range(1, 1000000))->capture_default_str();
        app.add_option("--system-prompt", chat.system_prompt);
      },
      [&](cogo::runtime::DaemonContext& ctx) -> cogo::runtime::Handler {
        const auto table = cogo::policy::LoadPolicy(policy, *ctx.logger);
        auto model = cogo::providers::MakeProvider(provider, cogo::providers::MakePricer(table->prices()), ctx.logger);
        return cogo::gateway::MakeChatHandler(model, table, chat, ctx.logger);
      }})));
}
