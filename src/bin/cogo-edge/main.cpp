// cogo-edge: the public HTTP ingress (see include/cogo/edge/edge_server.h). Secrets come from
// the environment only: COGO_JWT_SECRET, COGO_PUBLISHABLE_KEY.
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "cogo/edge/edge_server.h"
#include "cogo/orchestrator/routing.h"

int main(int argc, char** argv) {
  cogo::edge::EdgeOptions o;
  std::string routing;
  return cogo::runtime::RunDaemon(argc, argv, {
      "cogo-edge", "HTTP ingress: authenticate, validate, rate-limit, enqueue orchestrator/decide",
      [&](CLI::App& app) {
        app.add_option("--listen-host", o.host)->envname("COGO_EDGE_HOST")->capture_default_str();
        app.add_option("--port", o.port)->envname("COGO_EDGE_PORT")->capture_default_str();
        app.add_option("--http-threads", o.threads)->check(CLI::Range(1, 256))->capture_default_str();
        app.add_option("--shards", o.shards, "decide shards (hash of tenant)")->check(CLI::Range(1, 1024))->capture_default_str();
        app.add_option("--max-body-bytes", o.limits.max_body_bytes)->capture_default_str();
        app.add_option("--max-depth", o.limits.max_depth)->check(CLI::Range(1, 256))->capture_default_str();
        app.add_option("--rate-per-s", o.rate.rate_per_s, "per tenant; 0 = unlimited")->envname("COGO_EDGE_RATE_PER_S")->capture_default_str();
        app.add_option("--rate-burst", o.rate.burst)->envname("COGO_EDGE_RATE_BURST")->capture_default_str();
        app.add_option("--jwt-leeway-s", o.verify.leeway_seconds)->capture_default_str();
        app.add_option("--routing", routing, "routing rules: refuse unknown intents at the edge "
                       "(unless its classifier is on)")->envname("COGO_ROUTING");
      },
      [&](cogo::runtime::DaemonContext& ctx) {
        o.database_url = ctx.options.database_url;
        if (const char* s = std::getenv("COGO_JWT_SECRET")) o.jwt_secret = s;
        if (const char* k = std::getenv("COGO_PUBLISHABLE_KEY")) o.publishable_key = k;
        if (!routing.empty()) {
          const auto table = cogo::orchestrator::LoadRoutingFile(routing);
          o.check_intents = !table->classifier().enabled;
          for (const auto& [intent, rule] : table->rules()) o.known_intents.insert(intent);
        }
        std::vector<std::unique_ptr<cogo::runtime::Component>> components;
        components.push_back(std::make_unique<cogo::edge::EdgeServer>(o, ctx.logger));
        return components;
      }});
}
