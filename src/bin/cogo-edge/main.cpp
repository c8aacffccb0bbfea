// cogo-edge: the public HTTP ingress (see include/cogo/edge/edge_server.h). Secrets come from
// the environment (or files, see include/cogo/auth/secret.h): COGO_JWT_SECRET,
// COGO_PUBLISHABLE_KEY.
#include <CLI/CLI.hpp>

#include <algorithm>

#include "cogo/auth/secret.h"
#include "cogo/edge/edge_server.h"
#include "cogo/orchestrator/routing.h"

int main(int argc, char** argv) {
  cogo::edge::EdgeOptions o;
  cogo::http::JsonServiceOptions http;
  http.port = 8780;
  http.threads = 8;
  cogo::auth::VerifyOptions verify;
  std::string routing;
  return cogo::runtime::RunDaemon(argc, argv, {
      "cogo-edge", "HTTP ingress: authenticate, validate, rate-limit, enqueue orchestrator/decide",
      [&](CLI::App& app) {
        cogo::http::AddHttpOptions(app, http, "COGO_EDGE");
        app.add_option("--shards", o.shards, "decide shards (hash of tenant)")->check(CLI::Range(1, 1024))->capture_default_str();
        app.add_option("--max-body-bytes", o.limits.max_body_bytes)->capture_default_str();
        app.add_option("--max-depth", o.limits.max_depth)->check(CLI::Range(1, 256))->capture_default_str();
        app.add_option("--rate-per-s", o.rate.rate_per_s, "per tenant; 0 = unlimited")->envname("COGO_EDGE_RATE_PER_S")->capture_default_str();
        app.add_option("--rate-burst", o.rate.burst)->envname("COGO_EDGE_RATE_BURST")->capture_default_str();
        app.add_option("--jwt-leeway-s", verify.leeway_seconds)->capture_default_str();
        app.add_option("--routing", routing, "routing rules: refuse unknown intents at the edge "
                       "(unless its classifier is on)")->envname("COGO_ROUTING");
      },
      [&](cogo::runtime::DaemonContext& ctx) {
        http.database_url = ctx.options.database_url;
        http.registry = &ctx.registry;
        // Bodies a little over the ingress cap still reach ParseIngress for a precise 413; far
        // larger ones are cut off by the server (also a JSON 413).
        http.max_body_bytes = std::max<size_t>(o.limits.max_body_bytes * 4, 1 << 20);
        http.authenticate = cogo::edge::EdgeAuthenticator(cogo::auth::RequiredSecret("COGO_JWT_SECRET"),
                                                          cogo::auth::RequiredSecret("COGO_PUBLISHABLE_KEY"), verify);
        if (!routing.empty()) {
          const auto table = cogo::orchestrator::LoadRoutingFile(routing);
          o.check_intents = !table->classifier().enabled;
          for (const auto& [intent, rule] : table->rules()) o.known_intents.insert(intent);
        }
        auto ingress = std::make_unique<cogo::http::JsonService>("cogo-edge", http, ctx.logger);
        ingress->Add(cogo::edge::EdgeRoutes(*ingress, o, ctx.logger));
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(std::move(ingress));
        return components;
      }});
}
