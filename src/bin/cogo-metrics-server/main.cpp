// cogo-metrics-server: the metrics API, Prometheus /metrics, alerts and the dashboard (see
// include/cogo/metrics/server.h, docs/metrics.md) on 127.0.0.1:8782 by default. Every API call
// needs a JWT signed with COGO_JWT_SECRET (or the file COGO_JWT_SECRET_FILE), the edge's.
#include <CLI/CLI.hpp>

#include "cogo/auth/secret.h"
#include "cogo/metrics/server.h"

int main(int argc, char** argv) {
  cogo::metrics::MetricsServerOptions options;
  cogo::http::JsonServiceOptions http;
  http.port = 8782;
  return cogo::runtime::RunDaemon(argc, argv, {
      "cogo-metrics-server", "metrics API, Prometheus /metrics, alerts and the dashboard",
      [&](CLI::App& app) {
        cogo::http::AddHttpOptions(app, http, "COGO_METRICS_SERVER");
        cogo::metrics::AddMetricsServerOptions(app, options);
      },
      [&](cogo::runtime::DaemonContext& ctx) {
        http.database_url = ctx.options.database_url;
        http.registry = &ctx.registry;
        const auto secret = cogo::auth::RequiredSecret("COGO_JWT_SECRET");
        http.authenticate = cogo::metrics::MetricsAuthenticator(secret);
        options.sender.jwt_secret = secret;  // alert notifications start their runs on the brain as service_role
        return cogo::metrics::MakeMetricsServer(options, http, ctx);
      }});
}
