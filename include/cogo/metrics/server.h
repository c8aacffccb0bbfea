// cogo-metrics-server: what operators look at. Its JSON API over the bus, usage, decision and
// workflow tables (/api/metrics/..., /api/alerts), Prometheus /metrics with gauges read from the
// database, the dashboard's static page at /, and the alert evaluator that records firing and
// resolved alerts (sql/015_alerts.sql). Reads go through the JsonService's read-only
// transactions; only the evaluator writes, on its own connection. Every API call needs the
// edge's JWT (authenticated or service_role); a tenant token sees its tenant only, and
// /metrics and /api/alerts (every tenant's routes) need service_role. docs/metrics.md.
// Thread-safe: the routes run concurrently on the service's pool.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cogo/http/json_service.h"
#include "cogo/metrics/alert_sender.h"
#include "cogo/metrics/alerts.h"
#include "cogo/runtime/daemon.h"

namespace CLI {
class App;
}

namespace cogo::metrics {

struct MetricsServerOptions {
  std::string dashboard_dir;  // the page's files; empty: ./share/dashboard, the source tree's, else installed
  std::string chart_js = "/usr/share/javascript/chart.js/chart.min.js";  // Debian libjs-chart.js
  std::string policy_file;    // tenant daily caps for /api/metrics/spend; empty: caps not shown
  std::string alert_rules;    // JSON rules (LoadAlertRules); empty: DefaultAlertRules()
  std::chrono::milliseconds alert_interval{15000};  // evaluator period; 0 = no evaluator
  int recent_runs = 20;       // runs listed by /api/metrics/workflows
  std::string alert_workflow;  // started per transition of rules without their own `notify`; empty: none
  AlertSenderOptions sender;   // where and as whom those runs start (its jwt_secret: the caller's)
  std::string artifacts_dir = "artifacts";  // the brain's --artifacts-dir: /api/artifacts for the dashboard
  std::chrono::milliseconds rollup_interval{60000};  // latency rollup period (sql/020); 0 = never
};

// --dashboard-dir, --chart-js, --policy, --alert-rules, --alert-interval, --recent-runs,
// --alert-workflow, --alert-tenant, --brain-url, --artifacts-dir, --rollup-interval.
void AddMetricsServerOptions(CLI::App& app, MetricsServerOptions& options);

// Where the dashboard's files are when --dashboard-dir is not given.
[[nodiscard]] std::string DefaultDashboardDir();

// The JWT check of every API route: BearerJwt, and anon tokens refused (403 role_not_allowed).
[[nodiscard]] http::Authenticator MetricsAuthenticator(std::string secret);

// The whole daemon: the HTTP service on `http` (its authenticator must be set) and, when the
// interval is positive, the alert evaluator. Throws std::runtime_error when the dashboard's
// files, the policy or the rules cannot be read.
[[nodiscard]] std::vector<std::unique_ptr<runtime::Component>> MakeMetricsServer(
    const MetricsServerOptions& options, const http::JsonServiceOptions& http, runtime::DaemonContext& ctx);

}  // namespace cogo::metrics
