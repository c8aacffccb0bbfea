#include "cogo/http/health_listener.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <memory>

#include "cogo/http/json_service.h"

namespace cogo::http {

void AddHealthListenerOptions(CLI::App& app, HealthListenerOptions& options) {
  app.add_option("--health-host", options.host, "address of the /healthz and /readyz listener")
      ->envname("COGO_HEALTH_HOST")->capture_default_str();
  app.add_option("--health-port", options.port,
                 "port of the /healthz and /readyz listener; 0 = any free port (logged), -1 = none")
      ->envname("COGO_HEALTH_PORT")->check(CLI::Range(-1, 65535))->capture_default_str();
}

bool ComponentsReady(const std::vector<const runtime::Component*>& components) {
  return std::all_of(components.begin(), components.end(), [](const runtime::Component* component) {
    return component->FatalError().empty() && component->WaitReady(std::chrono::milliseconds(0));
  });
}

runtime::DaemonSpec WithHealthListener(runtime::DaemonSpec spec) {
  auto options = std::make_shared<HealthListenerOptions>();
  spec.add_options = [options, add = std::move(spec.add_options)](CLI::App& app) {
    if (add) add(app);
    AddHealthListenerOptions(app, *options);
  };
  spec.build = [options, build = std::move(spec.build)](runtime::DaemonContext& context) {
    auto components = build(context);
    if (options->port < 0) return components;
    std::vector<const runtime::Component*> watched;
    for (const auto& component : components) watched.push_back(component.get());
    JsonServiceOptions http;
    http.database_url = context.options.database_url;
    http.host = options->host;
    http.port = options->port;
    http.threads = 1;  // a probe every few seconds; its one pooled connection answers them all
    http.openapi = false;
    http.workers_ready = [watched = std::move(watched)] { return ComponentsReady(watched); };
    components.insert(components.begin(),
                      std::make_unique<JsonService>(context.logger->name() + "-health", http, context.logger));
    return components;
  };
  return spec;
}

}  // namespace cogo::http
