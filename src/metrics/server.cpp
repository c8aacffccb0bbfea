#include "cogo/metrics/server.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <pqxx/result>
#include <pqxx/transaction>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "cogo/artifacts/api.h"
#include "cogo/config/files.h"
#include "cogo/config/json_reader.h"
#include "cogo/config/names.h"
#include "cogo/metrics/window.h"
#include "cogo/ops/duration.h"
#include "cogo/policy/policy_table.h"
#include "cogo/runtime/periodic.h"
#include "cogo/workflow/runs.h"
#include "cogo/metrics/alert_sender.h"
#include "metrics/queries.h"
#include "metrics/statements.h"

namespace cogo::metrics {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr seconds kDefaultWindow{24 * 3600};
constexpr seconds kLatencyWindow{900};  // the latency card's and the gauges' window: 15m
constexpr int kTransitionsShown = 50;

// The page may run its own script and styles and call this origin, nothing else.
constexpr const char* kPageSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

struct Asset {
  std::string body;
  std::string content_type;
};

http::Response Serve(const Asset& asset) {
  http::Response out{200, asset.body, {{"Content-Security-Policy", kPageSecurityPolicy}}, asset.content_type};
  return out;
}

// The tenant a request reads: ?tenant= (validated, and within the token's scope), else the
// token's scope (nullopt: every tenant, the service role).
std::variant<Tenant, http::Response> ResolveTenant(const http::Request& req) {
  const auto asked = req.Query("tenant");
  if (!asked) return req.TenantScope();
  if (!config::IsValidName(*asked, config::kTenantName)) {
    return http::Error(400, "invalid_tenant", config::DescribeNameRule(config::kTenantName));
  }
  if (auto refusal = http::CheckTenant(req, *asked)) return *refusal;
  return Tenant(std::string(*asked));
}

std::variant<seconds, http::Response> ResolveWindow(const http::Request& req, seconds fallback) {
  const auto span = ParseWindow(req.Query("window"), fallback);
  if (!span.ok()) return http::Error(400, "invalid_window", span.error);
  return span.value;
}

class MetricsApi {
 public:
  MetricsApi(http::JsonService& service, const MetricsServerOptions& options, std::vector<AlertRule> rules,
             std::shared_ptr<const policy::PolicyTable> policy, prometheus::Registry& process)
      : service_(service), options_(options), rules_(std::move(rules)), policy_(std::move(policy)), process_(process) {
    const std::filesystem::path dir = options.dashboard_dir.empty() ? DefaultDashboardDir() : options.dashboard_dir;
    page_ = {config::ReadFile((dir / "index.html").string()), "text/html; charset=utf-8"};
    script_ = {config::ReadFile((dir / "dashboard.js").string()), "text/javascript; charset=utf-8"};
    style_ = {config::ReadFile((dir / "dashboard.css").string()), "text/css; charset=utf-8"};
    if (std::filesystem::is_regular_file(options.chart_js)) {
      chart_ = {config::ReadFile(options.chart_js), "text/javascript; charset=utf-8"};
    } else {
      // The page then shows its tables without charts (it checks for window.Chart).
      chart_ = {"/* Chart.js not installed (Debian libjs-chart.js): charts are off */\n", "text/javascript; charset=utf-8"};
    }
  }

  [[nodiscard]] bool has_charts() const { return chart_.body.size() > 200; }

  std::vector<http::Route> Routes() {
    using http::Access;
    std::vector<http::Route> routes = {
        {"GET", "/", Access::kPublic, "the dashboard (asks for a token; reads the API below)",
         [this](const http::Request&) { return Serve(page_); }},
        {"GET", "/static/dashboard.js", Access::kPublic, "the dashboard's script",
         [this](const http::Request&) { return Serve(script_); }},
        {"GET", "/static/dashboard.css", Access::kPublic, "the dashboard's styles",
         [this](const http::Request&) { return Serve(style_); }},
        {"GET", "/static/chart.min.js", Access::kPublic, "Chart.js as Debian ships it (libjs-chart.js)",
         [this](const http::Request&) { return Serve(chart_); }},
        {"GET", "/api/metrics/bus/latency", Access::kAnyToken,
         "queue wait and handler time p50/p90/p99 per route and tenant (?window=15m|1h|24h, ?tenant=)",
         [this](const http::Request& req) {
           return WithTenantAndWindow(req, kLatencyWindow, [&](auto& txn, const Tenant& t, seconds w) {
             return BusLatency(txn, w, t);
           });
         }},
        {"GET", "/api/metrics/bus/depth", Access::kAnyToken, "queued, delayed and running per route; lag (?tenant=)",
         [this](const http::Request& req) {
           return WithTenantAndWindow(req, kLatencyWindow, [&](auto& txn, const Tenant& t, seconds) {
             return BusDepth(txn, t);
           });
         }},
        {"GET", "/api/metrics/bus/failures", Access::kAnyToken,
         "failure rate and counts per route, reason and time bucket (?window=24h&bucket=1h, ?tenant=)",
         [this](const http::Request& req) { return Failures(req); }},
        {"GET", "/api/metrics/spend", Access::kAnyToken,
         "tokens and USD per tenant, agent, model and day, against the tenants' daily caps (?window=7d, ?tenant=)",
         [this](const http::Request& req) {
           return WithTenantAndWindow(req, seconds(7 * 24 * 3600), [&](auto& txn, const Tenant& t, seconds w) {
             std::function<double(const std::string&)> cap;
             if (policy_) cap = [p = policy_](const std::string& tenant) { return p->DailyCapUsd(tenant); };
             return Spend(txn, w, t, cap);
           });
         }},
        {"GET", "/api/metrics/decisions", Access::kAnyToken,
         "decision quality per agent, version and intent (?window=24h, ?tenant=)",
         [this](const http::Request& req) {
           return WithTenantAndWindow(req, kDefaultWindow, [&](auto& txn, const Tenant& t, seconds w) {
             return Decisions(txn, w, t);
           });
         }},
        {"GET", "/api/metrics/workflows", Access::kAnyToken,
         "runs per workflow and status, durations, gate pass rate, recent runs with gates and artifacts (?window=24h, ?tenant=)",
         [this](const http::Request& req) {
           return WithTenantAndWindow(req, kDefaultWindow, [&](auto& txn, const Tenant& t, seconds w) {
             return Workflows(txn, w, t, std::nullopt, options_.recent_runs);
           });
         }},
        {"GET", "/api/metrics/workflows/{workflow_id}", Access::kAnyToken,
         "one workflow's runs, durations, gate pass rate and recent runs (?window=24h, ?tenant=)",
         [this](const http::Request& req) { return Workflow(req); }},
        {"GET", "/api/metrics/runs/{run_id}", Access::kAnyToken, "a run: steps, gate verdicts, signals and trail",
         [this](const http::Request& req) { return Run(req); }},
        {"GET", "/api/alerts", Access::kServiceRole, "firing alerts, the latest transitions and the rules",
         [this](const http::Request& req) {
           json out;
           service_.Read(req, [&](pqxx::read_transaction& txn) { out = Alerts(txn, rules_, kTransitionsShown); });
           return http::Json(200, out.dump());
         }},
        {"GET", "/metrics", Access::kServiceRole, "Prometheus text: gauges from the database and this process's metrics",
         [this](const http::Request& req) { return Prometheus(req); }},
    };
    return routes;
  }

 private:
  template <typename Fn>
  http::Response WithTenantAndWindow(const http::Request& req, seconds fallback, Fn&& read) {
    auto tenant = ResolveTenant(req);
    if (auto* refusal = std::get_if<http::Response>(&tenant)) return std::move(*refusal);
    auto window = ResolveWindow(req, fallback);
    if (auto* refusal = std::get_if<http::Response>(&window)) return std::move(*refusal);
    json out;
    service_.Read(req, [&](pqxx::read_transaction& txn) {
      (void)txn.exec1(sql::kReadSettings);
      out = read(txn, std::get<Tenant>(tenant), std::get<seconds>(window));
    });
    if (const auto& t = std::get<Tenant>(tenant)) out["tenant"] = *t;
    return http::Json(200, out.dump());
  }

  http::Response Failures(const http::Request& req) {
    auto window = ResolveWindow(req, kDefaultWindow);
    if (auto* refusal = std::get_if<http::Response>(&window)) return std::move(*refusal);
    const auto bucket = ParseBucket(req.Query("bucket"), std::get<seconds>(window));
    if (!bucket.ok()) return http::Error(400, "invalid_bucket", bucket.error);
    return WithTenantAndWindow(req, kDefaultWindow, [&](auto& txn, const Tenant& t, seconds w) {
      return BusFailures(txn, w, bucket.value, t);
    });
  }

  http::Response Workflow(const http::Request& req) {
    const std::string id(req.Param("workflow_id"));
    if (!config::IsValidName(id, kWorkflowIdRule)) {
      return http::Error(400, "invalid_workflow_id", config::DescribeNameRule(kWorkflowIdRule));
    }
    bool known = false;
    auto out = WithTenantAndWindow(req, kDefaultWindow, [&](auto& txn, const Tenant& t, seconds w) {
      known = WorkflowKnown(txn, id);
      return known ? Workflows(txn, w, t, id, options_.recent_runs) : json::object();
    });
    if (out.status == 200 && !known) return http::Error(404, "not_found", "no such workflow");
    return out;
  }

  http::Response Run(const http::Request& req) {
    const int64_t id = http::ParseId(req.Param("run_id"));
    if (id <= 0) return http::Error(400, "invalid_run_id", "a run id is a positive integer");
    std::optional<std::string> view;
    service_.Read(req, [&](pqxx::read_transaction& txn) { view = workflow::RunViewJson(txn, id, req.TenantScope()); });
    return view ? http::Json(200, *view) : http::Error(404, "not_found", "no such run");
  }

  http::Response Prometheus(const http::Request& req) {
    const auto started = std::chrono::steady_clock::now();
    prometheus::Registry registry;
    auto& depth = prometheus::BuildGauge().Name("cogo_bus_messages").Help("Messages on the bus now, per route and state (queued, delayed, running)").Register(registry);
    auto& lag = prometheus::BuildGauge().Name("cogo_bus_lag_seconds").Help("Age of the oldest message due now and not yet claimed, per route").Register(registry);
    auto& wait = prometheus::BuildGauge().Name("cogo_bus_queue_wait_percentile_seconds").Help("Queue wait (publish to start) of messages finished in the last 15m: its 50th, 90th and 99th percentile per route").Register(registry);
    auto& finished = prometheus::BuildGauge().Name("cogo_bus_finished_last_24h").Help("Attempts ended in the last 24h per route and outcome (completed, failed, dead_lettered, retried)").Register(registry);
    auto& failure = prometheus::BuildGauge().Name("cogo_bus_failure_ratio_24h").Help("(failed + dead_lettered) / finished messages over the last 24h, per route").Register(registry);
    auto& quality = prometheus::BuildGauge().Name("cogo_decision_quality_ratio_24h").Help("Share of the last 24h's judged decisions whose execution reached done, per agent").Register(registry);
    auto& spent = prometheus::BuildGauge().Name("cogo_tenant_spent_today_usd").Help("USD recorded since the start of the UTC day, per tenant").Register(registry);
    auto& runs = prometheus::BuildGauge().Name("cogo_workflow_runs_last_24h").Help("Workflow runs started in the last 24h, per workflow and status").Register(registry);
    auto& alerts = prometheus::BuildGauge().Name("cogo_alert_firing").Help("1 per alert firing now, by rule, key and severity").Register(registry);
    auto& duration = prometheus::BuildGauge().Name("cogo_metrics_collect_seconds").Help("Time the database reads of this scrape took").Register(registry);
    service_.Read(req, [&](pqxx::read_transaction& txn) {
      (void)txn.exec1(sql::kReadSettings);
      const json bus_depth = BusDepth(txn, std::nullopt);
      for (const auto& r : bus_depth["routes"]) {
        const std::string service = r["service"], role = r["role"];
        depth.Add({{"service", service}, {"role", role}, {"state", "queued"}}).Set(r["due"].get<double>());
        depth.Add({{"service", service}, {"role", role}, {"state", "delayed"}}).Set(r["delayed"].get<double>());
        depth.Add({{"service", service}, {"role", role}, {"state", "running"}}).Set(r["running"].get<double>());
        lag.Add({{"service", service}, {"role", role}}).Set(r["lag_seconds"].get<double>());
      }
      const json latency = BusLatency(txn, kLatencyWindow, std::nullopt);
      for (const auto& r : latency["routes"]) {
        for (const auto& [percentile, name] : {std::pair{"50", "p50"}, {"90", "p90"}, {"99", "p99"}}) {
          const auto& v = r["wait_seconds"][name];
          if (v.is_number()) wait.Add({{"service", r["service"]}, {"role", r["role"]}, {"percentile", percentile}}).Set(v.get<double>());
        }
      }
      const json failures = BusFailures(txn, kDefaultWindow, seconds(3600), std::nullopt);
      for (const auto& r : failures["routes"]) {
        for (const char* outcome : {"completed", "failed", "dead_lettered", "retried"}) {
          finished.Add({{"service", r["service"]}, {"role", r["role"]}, {"outcome", outcome}}).Set(r[outcome].get<double>());
        }
        failure.Add({{"service", r["service"]}, {"role", r["role"]}}).Set(r["failure_rate"].get<double>());
      }
      const json decisions = Decisions(txn, kDefaultWindow, std::nullopt);
      for (const auto& a : decisions["agents"]) {
        if (a["quality"].is_number()) quality.Add({{"agent_id", a["agent_id"]}}).Set(a["quality"].get<double>());
      }
      for (const auto& row : txn.exec_params(sql::kSpentToday, Tenant{})) {
        spent.Add({{"tenant", row[0].as<std::string>()}}).Set(row[1].as<double>());
      }
      const json workflows = Workflows(txn, kDefaultWindow, std::nullopt, std::nullopt, 0);
      for (const auto& w : workflows["workflows"]) {
        for (const auto& [status, n] : w["by_status"].items()) {
          runs.Add({{"workflow_id", w["workflow_id"]}, {"status", status}}).Set(n.get<double>());
        }
      }
      const json firing = Alerts(txn, {}, 0);
      for (const auto& a : firing["active"]) {
        alerts.Add({{"rule", a["rule"]}, {"key", a["key"]}, {"severity", a["severity"]}}).Set(1);
      }
    });
    duration.Add({}).Set(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    auto families = registry.Collect();
    for (auto& family : process_.Collect()) families.push_back(std::move(family));
    return http::Response{200, prometheus::TextSerializer().Serialize(families), {}, "text/plain; version=0.0.4; charset=utf-8"};
  }

  http::JsonService& service_;
  const MetricsServerOptions options_;
  const std::vector<AlertRule> rules_;
  const std::shared_ptr<const policy::PolicyTable> policy_;
  prometheus::Registry& process_;
  Asset page_, script_, style_, chart_;
};

// Reads every rule's samples, decides with Evaluate, and records what changed, in one
// transaction under the evaluator lock (one evaluator at a time across servers).
void EvaluateAlerts(pqxx::connection& conn, const std::vector<AlertRule>& rules, const std::string& default_notify,
                    spdlog::logger& logger) {
  pqxx::work txn(conn);
  if (!txn.exec1(sql::kEvaluatorLock)[0].as<bool>()) return;
  (void)txn.exec1(sql::kReadSettings);
  std::map<std::string, std::set<std::string>> firing;
  for (const auto& row : txn.exec(sql::kFiringKeys)) firing[row[0].as<std::string>()].insert(row[1].as<std::string>());
  auto record = [&](const std::string& rule, const AlertTransition& t, double threshold, const std::string& severity,
                    const std::string& notify) {
    if (t.firing) {
      logger.warn("alert {} firing for {}: value {} (threshold {})", rule, t.key, t.value, threshold);
    } else {
      txn.exec_params0(sql::kResolve, rule, t.key);
      logger.info("alert {} resolved for {}: value {}", rule, t.key, t.value);
    }
    const std::optional<std::string> workflow = notify.empty() ? std::nullopt : std::optional(notify);
    (void)txn.exec_params1(sql::kRecordTransition, rule, t.key, t.firing ? "firing" : "resolved", t.value, threshold,
                           severity, workflow);
  };
  for (const auto& rule : rules) {
    const auto evaluation = Evaluate(rule, ReadSamples(txn, rule), firing[rule.name]);
    for (const auto& f : evaluation.firing) {
      txn.exec_params0(sql::kUpsertFiring, rule.name, f.key, rule.severity, f.value, rule.threshold, f.count);
    }
    for (const auto& t : evaluation.transitions) record(rule.name, t, rule.threshold, rule.severity, rule.notify);
    firing.erase(rule.name);
  }
  // Rules taken out of the configuration stop firing (sent through the default workflow).
  for (const auto& [rule, keys] : firing) {
    for (const auto& key : keys) record(rule, {key, false, 0.0}, 0.0, "warning", default_notify);
  }
  txn.commit();
}

// Rolls the hours that settled into bus_latency_hours (sql/020), each in its own transaction
// under the rollup's lock, at most kRollupHoursPerRound per round so a new rollup catches up on
// its 31 days over a few rounds; then prunes hours no window reaches.
constexpr int kRollupHoursPerRound = 200;
void RollUpLatency(pqxx::connection& conn, std::stop_token stop, spdlog::logger& logger) {
  int rolled = 0;
  while (rolled < kRollupHoursPerRound && !stop.stop_requested()) {
    pqxx::work txn(conn);
    if (!txn.exec1(sql::kRollupLock)[0].as<bool>()) return;
    const auto next = txn.exec(sql::kRollupNextHour);
    if (next.empty()) {
      txn.exec0(sql::kRollupPrune);
      txn.commit();
      break;
    }
    const double hour = next[0][0].as<double>();
    const auto rows = txn.exec_params(sql::kRollupHour, hour).affected_rows();
    txn.exec_params0(sql::kRollupAdvance, hour + 3600);
    txn.commit();
    ++rolled;
    logger.debug("latency rollup: hour {} ({} routes and tenants)", static_cast<int64_t>(hour), rows);
  }
  if (rolled > 0) logger.info("latency rollup: {} hours rolled up", rolled);
}

}  // namespace

void AddMetricsServerOptions(CLI::App& app, MetricsServerOptions& options) {
  app.add_option("--dashboard-dir", options.dashboard_dir, "the dashboard's files (index.html, dashboard.js, dashboard.css)")
      ->envname("COGO_DASHBOARD_DIR");
  app.add_option("--chart-js", options.chart_js, "Chart.js to serve (Debian libjs-chart.js)")->capture_default_str();
  app.add_option("--policy", options.policy_file, "policy table: tenants' daily caps for the spend card")
      ->envname("COGO_POLICY");
  app.add_option("--alert-rules", options.alert_rules, "alert rules (JSON); default: the built-in rules")
      ->envname("COGO_ALERT_RULES");
  ops::AddDurationOption(app, "--alert-interval", options.alert_interval, "how often alert rules are evaluated (0 = never)",
                         true);
  app.add_option("--recent-runs", options.recent_runs, "workflow runs listed")->check(CLI::Range(0, 500))->capture_default_str();
  app.add_option("--alert-workflow", options.alert_workflow,
                 "workflow started for each alert transition of rules that name none (its Notify node sends the webhook)")
      ->envname("COGO_ALERT_WORKFLOW");
  app.add_option("--alert-tenant", options.sender.tenant, "the tenant of alert notification runs")->capture_default_str();
  app.add_option("--brain-url", options.sender.brain_url, "where alert notification runs are started")
      ->envname("COGO_BRAIN_URL")
      ->capture_default_str();
  app.add_option("--artifacts-dir", options.artifacts_dir, "task artifacts the dashboard links to (the brain's)")
      ->envname("COGO_ARTIFACTS_DIR")
      ->capture_default_str();
  ops::AddDurationOption(app, "--rollup-interval", options.rollup_interval,
                         "how often finished hours are rolled up for long latency windows (0 = never)", true);
}

std::string DefaultDashboardDir() {
  for (const char* dir : {"share/dashboard", COGO_SOURCE_DASHBOARD_DIR}) {
    if (std::filesystem::is_directory(dir)) return dir;
  }
  return COGO_DASHBOARD_DIR;
}

http::Authenticator MetricsAuthenticator(std::string secret) {
  auto bearer = http::BearerJwt(std::move(secret));
  return [bearer](const http::Request& request) -> std::variant<auth::Claims, http::Response> {
    auto outcome = bearer(request);
    if (const auto* claims = std::get_if<auth::Claims>(&outcome); claims && claims->role == auth::Role::kAnon) {
      return http::Error(403, "role_not_allowed", "the metrics API needs an authenticated or service_role token");
    }
    return outcome;
  };
}

std::vector<std::unique_ptr<runtime::Component>> MakeMetricsServer(const MetricsServerOptions& options,
                                                                   const http::JsonServiceOptions& http,
                                                                   runtime::DaemonContext& ctx) {
  auto rules = options.alert_rules.empty() ? DefaultAlertRules() : LoadAlertRules(config::ReadFile(options.alert_rules));
  if (!options.alert_workflow.empty() && !config::IsValidName(options.alert_workflow, kWorkflowIdRule)) {
    throw std::runtime_error("--alert-workflow: " + config::DescribeNameRule(kWorkflowIdRule));
  }
  bool sends = false;
  for (auto& rule : rules) {
    if (rule.notify.empty()) rule.notify = options.alert_workflow;
    sends = sends || !rule.notify.empty();
  }
  std::shared_ptr<const policy::PolicyTable> policy;
  if (!options.policy_file.empty()) policy = policy::LoadPolicyFile(options.policy_file);
  auto service = std::make_unique<http::JsonService>("cogo-metrics-server", http, ctx.logger);
  auto api = std::make_shared<MetricsApi>(*service, options, rules, policy, ctx.registry);
  if (!api->has_charts()) ctx.logger->warn("{} not found: the dashboard shows tables without charts", options.chart_js);
  auto routes = api->Routes();
  for (auto& route : routes) route.handler = [api, inner = std::move(route.handler)](const http::Request& r) { return inner(r); };
  service->Add(std::move(routes));
  // The artifacts the workflow cards link to, as the brain serves them (tenant-scoped), so the
  // dashboard fetches them from its own origin with the token it holds.
  service->Add(artifacts::ArtifactRoutes(std::make_shared<artifacts::ArtifactStore>(options.artifacts_dir)));
  std::vector<std::unique_ptr<runtime::Component>> components;
  components.push_back(std::move(service));
  auto logger = ctx.logger;
  if (options.alert_interval.count() > 0) {
    if (sends && options.sender.jwt_secret.empty()) throw std::runtime_error("alert notifications need the JWT secret");
    components.push_back(std::make_unique<runtime::PeriodicTask>(
        runtime::PeriodicOptions{"alerts", ctx.options.database_url, options.alert_interval, std::chrono::milliseconds(10000), &ctx.registry},
        [rules, logger, sends, sender = options.sender, fallback = options.alert_workflow](pqxx::connection& conn,
                                                                                          std::stop_token) {
          EvaluateAlerts(conn, rules, fallback, *logger);
          if (sends) SendAlertTransitions(conn, sender, *logger);
        },
        ctx.logger));
  }
  if (options.rollup_interval.count() > 0) {
    components.push_back(std::make_unique<runtime::PeriodicTask>(
        runtime::PeriodicOptions{"latency-rollup", ctx.options.database_url, options.rollup_interval, std::chrono::milliseconds(10000),
                                 &ctx.registry},
        [logger](pqxx::connection& conn, std::stop_token stop) { RollUpLatency(conn, stop, *logger); }, ctx.logger));
  }
  return components;
}

}  // namespace cogo::metrics
