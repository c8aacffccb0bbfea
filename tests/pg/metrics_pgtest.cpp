// cogo-metrics-server over real HTTP against a database filled by real traffic: the real brain,
// executor and gateway-chat deciding and running requests, cogo-test-worker daemons completing,
// failing and retrying messages, and a workflow whose gate fails. Every endpoint's figures are
// checked against the database read here another way (raw rows, percentiles computed in C++);
// bad parameters, missing tokens and other tenants are refused; alerts fire and resolve.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/artifacts/store.h"
#include "cogo/auth/jwt.h"
#include "cogo/metrics/latency_histogram.h"
#include "cogo/workflow/engine.h"
#include "cogo/workflow/runs.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// work (test/echo) -> wait -> gate on the echoed `ok`: a run with ok=false fails its gate.
constexpr const char* kGated = R"({
  "parameters": {"ok": {"type": "boolean"}, "taskId": {"type": "string", "required": false}},
  "start": "work",
  "nodes": {
    "work": {"type": "publish", "service": "test", "role": "echo", "payload": {"ok": "${/parameters/ok}"}, "next": "waitWork"},
    "waitWork": {"type": "wait", "step": "work", "timeout": "60s", "next": "gate"},
    "gate": {"type": "gate", "assert": [{"path": "/steps/work/output/echo/ok", "op": "==", "value": true}], "onPass": "done"},
    "done": {"type": "end"}
  }
})";

// chat -> gateway/chat (the real gateway, metered); fragile -> test/broken (always fails).
constexpr const char* kRouting = R"({
  "rules": {
    "chat": {"target": {"service": "gateway", "role": "chat"}, "agent_id": "chat-assistant",
             "model": "offline-deterministic", "version": "1.0.0",
             "budget": {"maxCostUsd": 0.05, "maxTokens": 4000}, "ttl_ms": 60000},
    "fragile": {"target": {"service": "test", "role": "broken"}, "agent_id": "fragile-agent",
                "model": "offline-deterministic", "version": "2.0.0",
                "budget": {"maxCostUsd": 0.05, "maxTokens": 4000}, "ttl_ms": 60000}
  }
})";

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::map<std::string, std::string> Bearer(const std::string& tenant, auth::Role role = auth::Role::kAuthenticated) {
  return {{"Authorization", "Bearer " + auth::MintToken(kTestJwtSecret, {role, tenant, "ops", std::nullopt}, Now(),
                                                         std::chrono::hours(1))}};
}
std::map<std::string, std::string> Service() { return Bearer("", auth::Role::kServiceRole); }

// percentile_cont as PostgreSQL defines it, computed here from the raw values.
double PercentileCont(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const auto hi = static_cast<size_t>(std::ceil(pos));
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

std::vector<double> Column(const std::string& sql) {
  pqxx::connection conn(DatabaseUrl());
  pqxx::nontransaction txn(conn);
  std::vector<double> out;
  for (const auto& row : txn.exec(sql)) out.push_back(row[0].as<double>());
  return out;
}

json Get(int port, const std::string& path, const std::map<std::string, std::string>& headers) {
  const auto r = HttpGet(port, path, headers);
  EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  return json::parse(r.body, nullptr, false);
}

const json& Find(const json& list, const std::map<std::string, std::string>& match) {
  for (const auto& item : list) {
    bool all = true;
    for (const auto& [k, v] : match) all = all && item.contains(k) && item[k] == v;
    if (all) return item;
  }
  static const json kNone;
  ADD_FAILURE() << "no entry " << json(match).dump() << " in " << list.dump();
  return kNone;
}

class MetricsTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
    std::string templ = (std::filesystem::temp_directory_path() / "cogo-test-metrics.XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    std::filesystem::create_directory(dir_ + "/workflows");
    std::ofstream(dir_ + "/workflows/gated.json") << kGated;
    std::ofstream(dir_ + "/routing.json") << kRouting;
    // The example policy with a price on the offline model, so usage costs something.
    auto policy = json::parse(ReadFile(SourcePath("config/policy.example.json")));
    policy["prices"]["offline-deterministic"] = {{"usd_per_1k_input", 0.01}, {"usd_per_1k_output", 0.02}};
    std::ofstream(dir_ + "/policy.json") << policy.dump(2);
    setenv("COGO_POLICY", (dir_ + "/policy.json").c_str(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The evaluator is off unless `extra` sets an interval.
  std::unique_ptr<Daemon> StartMetrics(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--policy", dir_ + "/policy.json"};
    if (std::find(extra.begin(), extra.end(), "--alert-interval") == extra.end()) extra.insert(extra.end(), {"--alert-interval", "0"});
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>("cogo-metrics-server", args, ScratchFile("metrics.log"));
  }
  std::unique_ptr<WorkerDaemon> Worker(const std::string& service, const std::string& role, const std::string& outcome) {
    return std::make_unique<WorkerDaemon>(
        "cogo-test-worker",
        std::vector<std::string>{"--service", service, "--role", role, "--outcome", outcome, "--poll-ms", "100",
                                 "--concurrency", "4"},
        ScratchFile("workers.log"));
  }
  int64_t Publish(const std::string& tenant, const std::string& service, const std::string& role,
                  const std::string& payload = R"({"n":1})", int max_attempts = 5) {
    auto r = Message(payload, service, role);
    r.tenant = tenant;
    r.max_attempts = max_attempts;
    return bus_->Publish(r).id;
  }
  static int64_t Count(const std::string& where) {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE " + where);
  }
  // A login of the read-only group (sql/010) for the server, as deploy/sql/users.sql makes one.
  std::string Reader() {
    pqxx::nontransaction admin(*conn_);
    admin.exec0("DROP ROLE IF EXISTS cogo_test_metrics");
    admin.exec0("CREATE ROLE cogo_test_metrics LOGIN IN ROLE cogo_reader");
    return UrlAs("cogo_test_metrics");
  }

  // Real traffic of every kind; returns when all of it has settled: the idle route's messages
  // stay queued on purpose, and so do the runs' wait timeouts (timers due in a minute).
  void FillWithTraffic() {
    const auto log = ScratchFile("traffic.log");
    auto echo = Worker("test", "echo", "complete");
    auto broken = Worker("test", "broken", "fail");
    auto flaky = Worker("test", "flaky", "retry");
    auto chat = std::make_unique<WorkerDaemon>("cogo-gateway-chat", std::vector<std::string>{"--poll-ms", "100"}, log);
    auto executor = std::make_unique<WorkerDaemon>("cogo-executor-dispatcher", std::vector<std::string>{"--poll-ms", "100"}, log);
    Daemon brain("cogo-orchestrator-brain",
                 {"--routing", dir_ + "/routing.json", "--policy", dir_ + "/policy.json", "--workflows",
                  dir_ + "/workflows", "--poll-ms", "100"},
                 log);
    for (int i = 0; i < 6; ++i) Publish("acme", "test", "echo");
    for (int i = 0; i < 4; ++i) Publish("globex", "test", "echo");
    for (int i = 0; i < 3; ++i) Publish("acme", "test", "broken", R"({"n":1})", 1);
    for (int i = 0; i < 2; ++i) Publish("globex", "test", "flaky", R"({"n":1})", 2);
    Publish("acme", "test", "idle");
    Publish("globex", "test", "idle");
    for (int i = 0; i < 2; ++i) {  // not due for an hour: delayed
      auto later = Message(R"({"n":1})", "test", "later");
      later.delay_ms = 3'600'000;
      (void)bus_->Publish(later);
    }
    for (int i = 0; i < 3; ++i) Publish("acme", "orchestrator", "decide", R"({"intent":"chat","payload":{"message":"hello metrics"}})");
    Publish("globex", "orchestrator", "decide", R"({"intent":"fragile","payload":{"message":"this breaks"}})");

    auto catalog = std::make_shared<workflow::DefinitionCatalog>(workflow::LoadDefinitions(dir_ + "/workflows"));
    catalog->Register(*conn_);
    passing_run_ = workflow::StartRun(*conn_, *catalog, {"acme", "gated", {{"ok", true}, {"taskId", "task-7"}}, ""}).run_id;
    failing_run_ = workflow::StartRun(*conn_, *catalog, {"globex", "gated", {{"ok", false}}, ""}).run_id;

    ASSERT_TRUE(WaitFor([&] {
      // The runs' wait timers were cancelled with their waits: nothing of them stays queued.
      return Count("status IN ('queued', 'running') AND role NOT IN ('idle', 'later')") == 0 &&
             Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE finished_at IS NULL") == 0;
    }, 60s)) << "traffic did not settle: "
             << ScalarText("SELECT string_agg(id || ' ' || service || '/' || role || ' ' || status, ', ' ORDER BY id) "
                           "FROM agent_messages WHERE status IN ('queued', 'running')")
             << "; see " << log;
  }

  std::string dir_;
  int64_t passing_run_ = 0;
  int64_t failing_run_ = 0;
};

TEST_F(MetricsTest, EveryEndpointAgreesWithTheDatabaseAfterRealTraffic) {
  ASSERT_NO_FATAL_FAILURE(FillWithTraffic());
  const auto server = StartMetrics();
  const int port = server->port();

  // Sanity of the traffic itself: done, failed, dead-lettered after a retry, queued.
  EXPECT_EQ(Count("service = 'test' AND role = 'broken' AND status = 'failed'"), 4);  // 3 direct + 1 via fragile
  EXPECT_EQ(Count("service = 'test' AND role = 'flaky' AND status = 'dead'"), 2);
  EXPECT_EQ(Count("role = 'idle' AND status = 'queued'"), 2);

  // Latency: percentiles computed here from the raw rows.
  {
    const auto d = Get(port, "/api/metrics/bus/latency?window=1h", Service());
    const auto waits = Column("SELECT extract(epoch FROM started_at - created_at)::float8 FROM agent_messages "
                              "WHERE finished_at IS NOT NULL AND started_at IS NOT NULL");
    ASSERT_FALSE(waits.empty());
    EXPECT_EQ(d["window"], "1h");
    EXPECT_EQ(d["total"]["messages"].get<size_t>(), waits.size());
    EXPECT_NEAR(d["total"]["wait_seconds"]["p50"].get<double>(), PercentileCont(waits, 0.5), 1e-6);
    EXPECT_NEAR(d["total"]["wait_seconds"]["p90"].get<double>(), PercentileCont(waits, 0.9), 1e-6);
    const auto echo = Column("SELECT extract(epoch FROM finished_at - started_at)::float8 FROM agent_messages "
                             "WHERE service = 'test' AND role = 'echo' AND finished_at IS NOT NULL AND tenant = 'globex'");
    const auto& row = Find(d["route_tenants"], {{"service", "test"}, {"role", "echo"}, {"tenant", "globex"}});
    EXPECT_EQ(row["messages"].get<size_t>(), echo.size());
    EXPECT_NEAR(row["handler_seconds"]["p99"].get<double>(), PercentileCont(echo, 0.99), 1e-6);
  }
  // Depth: the idle route holds two due messages nobody serves, lagging since they were published.
  {
    const auto d = Get(port, "/api/metrics/bus/depth", Service());
    const auto& idle = Find(d["routes"], {{"service", "test"}, {"role", "idle"}});
    EXPECT_EQ(idle["queued"], 2);
    EXPECT_EQ(idle["due"], 2);
    const double age = Scalar<double>("SELECT extract(epoch FROM now() - min(created_at))::float8 FROM agent_messages WHERE role = 'idle'");
    EXPECT_NEAR(idle["lag_seconds"].get<double>(), age, 2.0);
    EXPECT_GT(idle["lag_seconds"].get<double>(), 0.0);
    EXPECT_EQ(d["total"]["queued"].get<int64_t>(), Count("status = 'queued'"));  // the delayed ones too
    const auto& later = Find(d["routes"], {{"service", "test"}, {"role", "later"}});
    EXPECT_EQ(later["delayed"], 2);
    EXPECT_EQ(later["due"], 0);
    EXPECT_EQ(d["total"]["running"], 0);
  }
  // Failures: the trail's outcomes counted per message status here.
  {
    const auto d = Get(port, "/api/metrics/bus/failures?window=1h&bucket=1m", Service());
    EXPECT_EQ(d["bucket"], "1m");
    const auto done = Count("status = 'done'");
    const auto failed = Count("status = 'failed'");
    const auto dead = Count("status = 'dead'");
    EXPECT_EQ(d["total"]["completed"].get<int64_t>(), done);
    EXPECT_EQ(d["total"]["failed"].get<int64_t>(), failed);
    EXPECT_EQ(d["total"]["dead_lettered"].get<int64_t>(), dead);
    EXPECT_EQ(d["total"]["retried"].get<int64_t>(), 2);  // each flaky message once before its last attempt
    EXPECT_NEAR(d["total"]["failure_rate"].get<double>(),
                static_cast<double>(failed + dead) / static_cast<double>(done + failed + dead), 1e-9);
    int64_t trend_completed = 0;
    for (const auto& p : d["trend"]) trend_completed += p["completed"].get<int64_t>();
    EXPECT_EQ(trend_completed, done);
    const auto& broken = Find(d["routes"], {{"service", "test"}, {"role", "broken"}});
    EXPECT_EQ(broken["failure_rate"], 1.0);
    EXPECT_EQ(Find(d["reasons"], {{"role", "broken"}, {"event", "failed"}})["reason"], "test_handler");
    EXPECT_EQ(Find(d["reasons"], {{"role", "flaky"}, {"event", "dead_lettered"}})["count"], 2);
  }
  // Spend: per tenant from message_usage summed here; the caps from the policy.
  {
    const auto d = Get(port, "/api/metrics/spend?window=1d", Service());
    const double usd = Scalar<double>("SELECT sum(cost_usd)::float8 FROM message_usage");
    const auto tokens = Scalar<int64_t>("SELECT sum(input_tokens + output_tokens) FROM message_usage");
    EXPECT_GT(usd, 0.0);
    EXPECT_NEAR(d["total"]["cost_usd"].get<double>(), usd, 1e-9);
    EXPECT_EQ(d["total"]["tokens"].get<int64_t>(), tokens);
    const auto& acme = Find(d["tenants"], {{"tenant", "acme"}});
    EXPECT_NEAR(acme["spent_today_usd"].get<double>(), usd, 1e-9);  // only acme chatted
    EXPECT_EQ(acme["daily_cap_usd"], 500.0);
    EXPECT_EQ(Find(d["rows"], {{"tenant", "acme"}, {"model", "offline-deterministic"}})["agent_id"], "chat-assistant");
  }
  // Decisions: 3 chats reached done, the fragile one failed; counted here from the messages.
  {
    const auto d = Get(port, "/api/metrics/decisions?window=1h", Service());
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions"), 4);
    EXPECT_EQ(Count("service = 'gateway' AND role = 'chat' AND status = 'done'"), 3);
    EXPECT_EQ(d["total"]["decisions"], 4);
    EXPECT_EQ(d["total"]["judged"], 4);
    EXPECT_EQ(d["total"]["correct"], 3);
    EXPECT_EQ(d["total"]["wrong"], 1);
    EXPECT_EQ(d["total"]["quality"], 0.75);
    EXPECT_EQ(Find(d["agents"], {{"agent_id", "fragile-agent"}})["quality"], 0.0);
    EXPECT_EQ(Find(d["rows"], {{"agent_id", "chat-assistant"}})["version"], "1.0.0");
  }
  // Workflows: one passing and one failing gate, with the run list and the run view.
  {
    const auto d = Get(port, "/api/metrics/workflows?window=1h", Service());
    const auto& gated = Find(d["workflows"], {{"workflow_id", "gated"}});
    EXPECT_EQ(gated["runs"], 2);
    EXPECT_EQ(gated["by_status"]["succeeded"], 1);
    EXPECT_EQ(gated["by_status"]["failed"], 1);
    EXPECT_EQ(gated["gates"]["passed"], 1);
    EXPECT_EQ(gated["gates"]["failed"], 1);
    EXPECT_EQ(gated["gates"]["pass_rate"], 0.5);
    const auto durations = Column("SELECT extract(epoch FROM finished_at - created_at)::float8 FROM workflow_runs");
    EXPECT_NEAR(gated["duration_seconds"]["p50"].get<double>(), PercentileCont(durations, 0.5), 1e-6);
    ASSERT_EQ(d["recent_runs"].size(), 2u);
    EXPECT_EQ(d["recent_runs"][0]["run_id"], failing_run_);
    EXPECT_EQ(d["recent_runs"][0]["reason"], "gate_failed");
    EXPECT_EQ(d["recent_runs"][0]["gates"][0]["verdict"], "fail");
    EXPECT_EQ(d["recent_runs"][1]["artifacts"][1]["path"], "artifacts/task-7/build-test/report.json");
    EXPECT_EQ(d["recent_runs"][1]["artifacts"][1]["api"], "/api/artifacts/task-7/build-test/report.json");
    EXPECT_EQ(d["recent_runs"][1]["artifacts"][2]["api"], "/api/artifacts/task-7");  // its files, logs included
    const auto one = Get(port, "/api/metrics/workflows/gated", Service());
    EXPECT_EQ(one["workflows"][0]["runs"], 2);
    const auto view = Get(port, "/api/metrics/runs/" + std::to_string(failing_run_), Service());
    EXPECT_EQ(view["status"], "failed");
    EXPECT_EQ(view["gates"][0]["verdict"], "fail");
    EXPECT_FALSE(view["events"].empty());
  }
}

TEST_F(MetricsTest, BadParametersAreRefusedWithAReason) {
  const auto server = StartMetrics();
  const int port = server->port();
  const struct {
    const char* path;
    int status;
    const char* error;
  } cases[] = {
      {"/api/metrics/bus/latency?window=1y", 400, "invalid_window"},
      {"/api/metrics/bus/latency?window=", 400, "invalid_window"},
      {"/api/metrics/bus/latency?window=59s", 400, "invalid_window"},
      {"/api/metrics/bus/latency?window=31d", 400, "invalid_window"},
      {"/api/metrics/bus/failures?bucket=7m", 400, "invalid_bucket"},
      {"/api/metrics/bus/failures?window=15m&bucket=1h", 400, "invalid_bucket"},
      {"/api/metrics/bus/failures?window=30d&bucket=1m", 400, "invalid_bucket"},
      {"/api/metrics/spend?tenant=no%20spaces", 400, "invalid_tenant"},
      {"/api/metrics/decisions?tenant=", 400, "invalid_tenant"},
      {"/api/metrics/workflows/bad%20id", 400, "invalid_workflow_id"},
      {"/api/metrics/workflows/nosuchflow", 404, "not_found"},
      {"/api/metrics/runs/abc", 400, "invalid_run_id"},
      {"/api/metrics/runs/0", 400, "invalid_run_id"},
      {"/api/metrics/runs/999999", 404, "not_found"},
  };
  for (const auto& c : cases) {
    ExpectJsonError(HttpGet(port, c.path, Service()), c.status, c.error, c.path);
  }
  EXPECT_EQ(HttpGet(port, "/api/metrics/bus/failures?window=7d&bucket=6h", Service()).status, 200);
}

TEST_F(MetricsTest, TokensAreRequiredAndATenantSeesOnlyItsOwn) {
  {
    auto echo = Worker("test", "echo", "complete");
    for (int i = 0; i < 3; ++i) Publish("acme", "test", "echo");
    for (int i = 0; i < 2; ++i) Publish("globex", "test", "echo");
    Publish("globex", "test", "idle");
    ASSERT_TRUE(WaitFor([&] { return Count("status = 'done'") == 5; }));
  }
  const auto server = StartMetrics();
  const int port = server->port();
  const char* api[] = {"/api/metrics/bus/latency", "/api/metrics/bus/depth", "/api/metrics/bus/failures",
                       "/api/metrics/spend", "/api/metrics/decisions", "/api/metrics/workflows",
                       "/api/metrics/workflows/gated", "/api/metrics/runs/1", "/api/alerts", "/metrics"};
  for (const char* path : api) {
    ExpectJsonError(HttpGet(port, path), 401, "missing_token", path);
    ExpectJsonError(HttpGet(port, path, Bearer("acme", auth::Role::kAnon)), 403, "role_not_allowed", path);
  }
  // Operators' views of every tenant need service_role.
  ExpectJsonError(HttpGet(port, "/api/alerts", Bearer("acme")), 403, "service_role_required", "alerts");
  ExpectJsonError(HttpGet(port, "/metrics", Bearer("acme")), 403, "service_role_required", "metrics");
  ExpectJsonError(HttpGet(port, "/api/metrics/bus/latency?tenant=globex", Bearer("acme")), 403, "tenant_mismatch", "other tenant");

  const auto mine = Get(port, "/api/metrics/bus/latency?window=1h", Bearer("acme"));
  EXPECT_EQ(mine["tenant"], "acme");
  EXPECT_EQ(mine["total"]["messages"], 3);
  for (const auto& r : mine["route_tenants"]) EXPECT_EQ(r["tenant"], "acme");
  EXPECT_EQ(Get(port, "/api/metrics/bus/latency?window=1h&tenant=acme", Bearer("acme"))["total"]["messages"], 3);
  EXPECT_EQ(Get(port, "/api/metrics/bus/failures?window=1h", Bearer("acme"))["total"]["completed"], 3);
  EXPECT_TRUE(Get(port, "/api/metrics/bus/depth", Bearer("acme"))["routes"].empty());  // the idle message is globex's
  EXPECT_EQ(Get(port, "/api/metrics/bus/depth", Bearer("globex"))["total"]["queued"], 1);
  EXPECT_EQ(Get(port, "/api/metrics/bus/latency?window=1h", Service())["total"]["messages"], 5);
  EXPECT_EQ(Get(port, "/api/metrics/bus/latency?window=1h&tenant=globex", Service())["total"]["messages"], 2);

  // The page and its assets are public (they hold no data) and may run only their own code.
  const auto page = HttpGet(port, "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("cogo dashboard"), std::string::npos);
  EXPECT_NE(page.headers.at("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page.headers.at("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(HttpGet(port, "/static/dashboard.js").status, 200);

  // The OpenAPI document names every route of the API.
  const auto openapi = json::parse(HttpGet(port, "/openapi.json").body, nullptr, false);
  ASSERT_TRUE(openapi.is_object());
  for (const char* path : api) {
    const std::string pattern = std::string(path) == "/api/metrics/workflows/gated" ? "/api/metrics/workflows/{workflow_id}"
                                : std::string(path) == "/api/metrics/runs/1"        ? "/api/metrics/runs/{run_id}"
                                                                                    : path;
    EXPECT_TRUE(openapi["paths"].contains(pattern)) << pattern;
  }
  EXPECT_TRUE(openapi["paths"].contains("/api/artifacts/{task_id}/{dir}/{name}"));
}

// The server runs as a cogo_reader user (sql/010): it reads everything and its evaluator writes
// only the alert tables (sql/015).
TEST_F(MetricsTest, AlertsFireAndResolveAndEachChangeIsRecordedAsAReader) {
  const auto rules = dir_ + "/rules.json";
  std::ofstream(rules) << R"({"rules": [
    {"name": "lag", "metric": "bus_lag_seconds", "op": ">=", "threshold": 1, "severity": "critical"},
    {"name": "dead", "metric": "bus_dead_letters", "op": ">=", "threshold": 1, "window": "1h"}]})";
  {
    pqxx::nontransaction admin(*conn_);
    admin.exec0("DROP ROLE IF EXISTS cogo_test_metrics");
    admin.exec0("CREATE ROLE cogo_test_metrics LOGIN IN ROLE cogo_reader");
  }
  auto firing = [&](const std::string& rule) {
    return Scalar<int64_t>("SELECT count(*) FROM alert_states WHERE rule = '" + rule + "'") > 0;
  };
  {
    const auto server = StartMetrics({"--alert-rules", rules, "--alert-interval", "200ms", "--database-url",
                                      UrlAs("cogo_test_metrics")});
    const int port = server->port();
    Publish("acme", "test", "later");
    ASSERT_TRUE(WaitFor([&] { return firing("lag"); }, 20s)) << "see " << server->log();
    const auto alerts = Get(port, "/api/alerts", Service());
    const auto& lag = Find(alerts["active"], {{"rule", "lag"}});
    EXPECT_EQ(lag["key"], "test/later");
    EXPECT_EQ(lag["severity"], "critical");
    EXPECT_GE(lag["value"].get<double>(), 1.0);
    EXPECT_EQ(alerts["rules"].size(), 2u);
    {
      auto worker = Worker("test", "later", "complete");
      ASSERT_TRUE(WaitFor([&] { return !firing("lag"); }, 20s));
    }
    EXPECT_EQ(ScalarText("SELECT string_agg(state, ' ' ORDER BY id) FROM alert_transitions WHERE rule = 'lag'"),
              "firing resolved");
    const auto after = Get(port, "/api/alerts", Service());
    EXPECT_TRUE(after["active"].empty());
    EXPECT_EQ(after["transitions"][0]["state"], "resolved");
    EXPECT_FALSE(firing("dead"));
  }
  pqxx::nontransaction admin(*conn_);
  admin.exec0("DROP ROLE cogo_test_metrics");
}

// Windows longer than an hour read the finished hours from the rollup (sql/020) that the server
// keeps as a cogo_reader user: counts and means exact, percentiles within one histogram bucket
// of percentile_cont over the rows; the same window without the rollup is exact.
TEST_F(MetricsTest, LongWindowsReadTheHourlyRollupAndAgreeWithTheRows) {
  // Five hours of finished messages (the bus cannot be run in the past: rows are written as
  // workers leave them), two routes and two tenants, waits from 1 ms to 3 s.
  {
    pqxx::nontransaction admin(*conn_);
    admin.exec0(R"SQL(
      INSERT INTO agent_messages (service, role, shard, tenant, payload, status, attempts, created_at, started_at, finished_at)
      SELECT 'test', CASE WHEN i % 3 = 0 THEN 'slow' ELSE 'echo' END, 0, CASE WHEN i % 4 = 0 THEN 'acme' ELSE 'globex' END,
             '{}', 'done', 1, t, t + ((i * 37) % 3000 + 1) * interval '1 millisecond',
             t + ((i * 37) % 3000 + 1 + (i % 7) * 40) * interval '1 millisecond'
      FROM generate_series(1, 3000) AS i,
           LATERAL (SELECT now() - interval '5 hours' + i * interval '6 seconds' AS t) x)SQL");
  }
  const std::string filter = "finished_at >= now() - interval '6 hours' AND started_at IS NOT NULL";
  const auto waits = Column("SELECT extract(epoch FROM started_at - created_at)::float8 FROM agent_messages WHERE " + filter);
  const auto handlers = Column("SELECT extract(epoch FROM finished_at - started_at)::float8 FROM agent_messages WHERE " + filter);
  const auto acme_waits = Column("SELECT extract(epoch FROM started_at - created_at)::float8 FROM agent_messages WHERE " +
                                 filter + " AND tenant = 'acme'");
  auto within_a_bucket = [](const json& shown, double exact, const std::string& what) {
    ASSERT_TRUE(shown.is_number()) << what;
    const auto [low, high] = metrics::LatencyBucketBounds(metrics::LatencyBucket(exact));
    EXPECT_NEAR(shown.get<double>(), exact, 2 * (high - low)) << what;
  };
  {
    const auto exact = StartMetrics({"--rollup-interval", "0"});
    const auto d = Get(exact->port(), "/api/metrics/bus/latency?window=6h", Service());
    EXPECT_EQ(d["percentiles"], "exact");
    EXPECT_EQ(d["total"]["messages"].get<size_t>(), waits.size());
    EXPECT_NEAR(d["total"]["wait_seconds"]["p90"].get<double>(), PercentileCont(waits, 0.9), 1e-6);
  }
  const auto server = StartMetrics({"--rollup-interval", "200ms", "--database-url", Reader()});
  // The hours that ended more than two minutes ago: four or five of them.
  ASSERT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM bus_latency_rollup_state "
                           "WHERE rolled_through > now() - interval '1 hour 3 minutes'") == 1;
  }, 60s)) << "the rollup did not catch up; see " << server->log();
  EXPECT_GE(Scalar<int64_t>("SELECT count(DISTINCT hour) FROM bus_latency_hours"), 4);
  EXPECT_EQ(Scalar<int64_t>("SELECT sum(messages) FROM bus_latency_hours"),
            Count("finished_at < (SELECT rolled_through FROM bus_latency_rollup_state)"));

  const auto d = Get(server->port(), "/api/metrics/bus/latency?window=6h", Service());
  EXPECT_EQ(d["percentiles"], "histogram");
  EXPECT_GE(d["rolled_hours"].get<int>(), 3);
  EXPECT_EQ(d["total"]["messages"].get<size_t>(), waits.size());
  double wait_sum = 0;
  for (double w : waits) wait_sum += w;
  EXPECT_NEAR(d["total"]["wait_seconds"]["avg"].get<double>(), wait_sum / static_cast<double>(waits.size()), 1e-6);
  for (const auto& [name, q] : {std::pair{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}}) {
    within_a_bucket(d["total"]["wait_seconds"][name], PercentileCont(waits, q), std::string("wait ") + name);
    within_a_bucket(d["total"]["handler_seconds"][name], PercentileCont(handlers, q), std::string("handler ") + name);
  }
  const auto& slow = Find(d["routes"], {{"service", "test"}, {"role", "slow"}});
  EXPECT_EQ(slow["messages"], Count(filter + " AND role = 'slow'"));
  const auto& acme_echo = Find(d["route_tenants"], {{"service", "test"}, {"role", "echo"}, {"tenant", "acme"}});
  EXPECT_EQ(acme_echo["messages"], Count(filter + " AND role = 'echo' AND tenant = 'acme'"));

  // A tenant reads its own hours only.
  const auto mine = Get(server->port(), "/api/metrics/bus/latency?window=6h", Bearer("acme"));
  EXPECT_EQ(mine["percentiles"], "histogram");
  EXPECT_EQ(mine["total"]["messages"].get<size_t>(), acme_waits.size());
  within_a_bucket(mine["total"]["wait_seconds"]["p50"], PercentileCont(acme_waits, 0.5), "acme wait p50");
  for (const auto& r : mine["route_tenants"]) EXPECT_EQ(r["tenant"], "acme");
  // A window within the last hour has no whole rolled-up hour: exact.
  EXPECT_EQ(Get(server->port(), "/api/metrics/bus/latency?window=30m", Service())["percentiles"], "exact");
}

// An HTTP receiver for webhooks on a port the kernel picks, recording what it is sent.
class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.Post("/cogo-alerts", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      received_.push_back({req.body, req.get_header_value("X-Cogo-Signature")});
      res.status = 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookReceiver() {
    server_.stop();
    thread_.join();
  }
  struct Post {
    std::string body;
    std::string signature;
  };
  std::vector<Post> received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Post> received_;
};

// A rule naming a workflow sends each of its transitions through the brain's workflow engine:
// the evaluator records it, the sender starts one run of the workflow (the shipped example
// definition, pointed at a local receiver), and the run's Notify node posts it, signed.
TEST_F(MetricsTest, AlertTransitionsReachAWebhookThroughTheWorkflowEngineOnceEach) {
  constexpr const char* kNotifySecret = "notify-secret-0123456789abcdef";
  WebhookReceiver receiver;
  auto definition = json::parse(ReadFile(SourcePath("examples/workflows/alertWebhook.json")));
  definition["nodes"]["post"]["url"] = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cogo-alerts";
  std::ofstream(dir_ + "/workflows/alertWebhook.json") << definition.dump(2);
  const auto rules = dir_ + "/notify-rules.json";
  std::ofstream(rules) << R"({"rules": [
    {"name": "lag_hook", "metric": "bus_lag_seconds", "op": ">=", "threshold": 1, "notify": "alertWebhook"}]})";
  setenv("COGO_NOTIFY_SECRET", kNotifySecret, 1);
  const auto brain_log = ScratchFile("brain.log");
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", dir_ + "/routing.json", "--policy", dir_ + "/policy.json", "--workflows", dir_ + "/workflows",
                "--poll-ms", "100"},
               brain_log);
  unsetenv("COGO_NOTIFY_SECRET");
  const auto server = StartMetrics({"--alert-rules", rules, "--alert-interval", "200ms", "--database-url", Reader(),
                                    "--brain-url", "http://127.0.0.1:" + std::to_string(brain.port())});
  auto posts_with = [&](const std::string& state) {
    int n = 0;
    for (const auto& p : receiver.received()) {
      const auto body = json::parse(p.body, nullptr, false);
      if (body.is_object() && body["alert"]["state"] == state) ++n;
    }
    return n;
  };
  Publish("acme", "test", "later");
  ASSERT_TRUE(WaitFor([&] { return posts_with("firing") > 0; }, 30s))
      << "no firing webhook; see " << server->log() << " and " << brain_log;
  {
    auto worker = Worker("test", "later", "complete");
    ASSERT_TRUE(WaitFor([&] { return posts_with("resolved") > 0; }, 30s)) << "no resolved webhook; see " << server->log();
  }
  std::this_thread::sleep_for(2s);  // ten more evaluator rounds: nothing is sent again
  const auto posts = receiver.received();
  ASSERT_EQ(posts.size(), 2u);
  const auto firing = json::parse(posts[0].body);
  EXPECT_EQ(firing["source"], "cogo-metrics-server");
  EXPECT_EQ(firing["alert"]["rule"], "lag_hook");
  EXPECT_EQ(firing["alert"]["key"], "test/later");
  EXPECT_EQ(firing["alert"]["state"], "firing");
  EXPECT_GE(firing["alert"]["value"].get<double>(), 1.0);
  EXPECT_EQ(json::parse(posts[1].body)["alert"]["state"], "resolved");
  for (const auto& p : posts) EXPECT_EQ(p.signature, "sha256=" + workflow::SignBody(kNotifySecret, p.body));

  // Each transition: one run of the workflow, in the ops tenant, succeeded.
  EXPECT_EQ(ScalarText("SELECT string_agg(t.state || ':' || r.status || ':' || r.tenant, ' ' ORDER BY t.id) "
                       "FROM alert_transitions t JOIN workflow_runs r ON r.id = t.notify_run_id"),
            "firing:succeeded:ops resolved:succeeded:ops");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE workflow_id = 'alertWebhook'"), 2);
  const auto alerts = Get(server->port(), "/api/alerts", Service());
  EXPECT_EQ(alerts["transitions"][0]["notify"]["workflow_id"], "alertWebhook");
  EXPECT_TRUE(alerts["transitions"][0]["notify"]["run_id"].is_number_integer());
  EXPECT_EQ(alerts["rules"][0]["notify"], "alertWebhook");
  // No secret in any log: the webhook key, the JWT secret, or a token minted from it.
  for (const auto& log : {server->log(), brain_log}) {
    const auto text = ReadFile(log);
    EXPECT_EQ(text.find(kNotifySecret), std::string::npos) << log;
    EXPECT_EQ(text.find(kTestJwtSecret), std::string::npos) << log;
    EXPECT_EQ(text.find("Bearer"), std::string::npos) << log;
    EXPECT_EQ(text.find("eyJ"), std::string::npos) << log;  // a JWT's header
  }
}

// An unknown workflow is a refusal: the transition is given up with the brain's reason, once.
TEST_F(MetricsTest, AnAlertWorkflowTheBrainRefusesIsGivenUpWithItsReason) {
  const auto rules = dir_ + "/notify-rules.json";
  std::ofstream(rules) << R"({"rules": [
    {"name": "lag_hook", "metric": "bus_lag_seconds", "op": ">=", "threshold": 1, "notify": "noSuchFlow"}]})";
  Daemon brain("cogo-orchestrator-brain",
               {"--routing", dir_ + "/routing.json", "--policy", dir_ + "/policy.json", "--workflows", dir_ + "/workflows",
                "--poll-ms", "100"},
               ScratchFile("brain.log"));
  const auto server = StartMetrics({"--alert-rules", rules, "--alert-interval", "200ms", "--brain-url",
                                    "http://127.0.0.1:" + std::to_string(brain.port())});
  Publish("acme", "test", "later");
  ASSERT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM alert_transitions WHERE notified_at IS NOT NULL") == 1;
  }, 30s)) << "see " << server->log();
  EXPECT_EQ(ScalarText("SELECT notify_error FROM alert_transitions"), "brain_400: unknown_workflow");
  EXPECT_EQ(Scalar<int64_t>("SELECT notify_attempts FROM alert_transitions"), 1);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM alert_transitions WHERE notify_run_id IS NOT NULL"), 0);
}

// A port nobody listens on now, for Prometheus, which cannot report the port it bound (cogo's
// daemons bind port 0 and log theirs): the kernel picks one for a socket that is closed again at once.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("no free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

bool Installed(const std::string& path) { return std::filesystem::exists(path); }

// The stack as deployed: every daemon with COGO_METRICS_LISTEN (the metrics server on its own
// port, behind a service_role token), a request through all of it, a real Prometheus scraping
// each one every second, and each daemon's own series found in Prometheus under its job.
TEST_F(MetricsTest, PrometheusScrapesEveryDaemonOfTheStackAndPromtoolAcceptsEach) {
  if (!Installed("/usr/bin/prometheus") || !Installed("/usr/bin/promtool")) {
    FAIL() << "Debian prometheus is not installed (scripts/bootstrap.sh installs it)";
  }
  const auto log = ScratchFile("stack.log");
  std::map<std::string, int> exporters;  // job -> its COGO_METRICS_LISTEN port
  auto with_exporter = [&](const std::string& job, auto start) {
    const auto offset = LogSize(log);
    setenv("COGO_METRICS_LISTEN", "127.0.0.1:0", 1);  // the daemon binds and logs a free port
    auto daemon = start();
    unsetenv("COGO_METRICS_LISTEN");
    EXPECT_TRUE(WaitFor([&] { return (exporters[job] = LoggedMetricsPort(log, offset)) != 0; }, 30s))
        << job << " logged no metrics port; see " << log;
    return daemon;
  };
  auto worker = [&](const std::string& binary, std::vector<std::string> args) {
    return [&, binary, args] { return std::make_unique<WorkerDaemon>(binary, args, log); };
  };
  auto edge = with_exporter("cogo-edge", [&] {
    return std::make_unique<Daemon>("cogo-edge", std::vector<std::string>{"--routing", dir_ + "/routing.json"}, log);
  });
  auto brain = with_exporter("cogo-orchestrator-brain", [&] {
    return std::make_unique<Daemon>("cogo-orchestrator-brain",
                                    std::vector<std::string>{"--routing", dir_ + "/routing.json", "--policy",
                                                             dir_ + "/policy.json", "--workflows", dir_ + "/workflows",
                                                             "--poll-ms", "100"},
                                    log);
  });
  auto executor = with_exporter("cogo-executor-dispatcher", worker("cogo-executor-dispatcher", {"--poll-ms", "100"}));
  auto chat = with_exporter("cogo-gateway-chat", worker("cogo-gateway-chat", {"--poll-ms", "100"}));
  auto reclaimer = with_exporter("cogo-bus-reclaimer", worker("cogo-bus-reclaimer", {"--interval", "500ms"}));
  auto retention = with_exporter("cogo-bus-retention", worker("cogo-bus-retention", {"--interval", "500ms"}));
  auto broken = Worker("test", "broken", "fail");
  const auto server = StartMetrics();

  // One request through the edge: decided by the brain, admitted by the executor, answered by
  // gateway-chat; and a failure on another route.
  const auto token = auth::MintToken(kTestJwtSecret, {auth::Role::kAuthenticated, "acme", "ops", std::nullopt}, Now(),
                                     std::chrono::hours(1));
  const auto accepted = HttpPost(edge->port(), "/functions/v1/orchestrator-chat",
                                 R"({"tenant": "acme", "intent": "chat", "payload": {"message": "hello prometheus"}})",
                                 {{"Authorization", "Bearer " + token}, {"apikey", kTestPublishableKey}});
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  Publish("acme", "test", "broken", R"({"n":1})", 1);
  Publish("acme", "test", "idle");
  ASSERT_TRUE(WaitFor([&] { return Count("service = 'gateway' AND status = 'done'") == 1 && Count("status = 'failed'") == 1; }, 30s))
      << "the request did not go through; see " << log;

  // The exposition format as promtool's linter reads it, from every daemon.
  const auto text = HttpGet(server->port(), "/metrics", Service());
  ASSERT_EQ(text.status, 200);
  EXPECT_NE(text.headers.at("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(text.body.find(R"(cogo_bus_messages{role="idle",service="test",state="queued"} 1)"), std::string::npos) << text.body;
  EXPECT_EQ(RunCommand("/usr/bin/promtool", {"check", "metrics"}, text.body).status, 0) << text.body;
  for (const auto& [job, port] : exporters) {
    const auto exported = HttpGet(port, "/metrics");
    ASSERT_EQ(exported.status, 200) << job;
    const auto checked = RunCommand("/usr/bin/promtool", {"check", "metrics"}, exported.body);
    EXPECT_EQ(checked.status, 0) << job << ": " << checked.output;
  }

  // A real Prometheus scraping all of them every second.
  std::ofstream(dir_ + "/token") << auth::MintToken(kTestJwtSecret, {auth::Role::kServiceRole, "", "prometheus", std::nullopt},
                                                    Now(), std::chrono::hours(1));
  std::ofstream config(dir_ + "/prometheus.yml");
  config << "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: cogo-metrics-server\n"
            "    authorization: {type: Bearer, credentials_file: " << dir_ << "/token}\n"
            "    static_configs: [{targets: ['127.0.0.1:" << server->port() << "']}]\n";
  for (const auto& [job, port] : exporters) {
    config << "  - job_name: " << job << "\n    static_configs: [{targets: ['127.0.0.1:" << port << "']}]\n";
  }
  config.close();
  const int prometheus_port = FreePort();
  ChildProcess prometheus("/usr/bin/prometheus",
                          {"--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/tsdb",
                           "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port), "--log.level=warn"},
                          ScratchFile("prometheus.log"));
  auto series = [&](const std::string& query) {
    const auto r = HttpGet(prometheus_port, "/api/v1/query?query=" + httplib::detail::encode_query_param(query));
    const auto body = json::parse(r.body, nullptr, false);
    return r.status == 200 && body.is_object() ? body["data"]["result"] : json::array();
  };
  // Each daemon's own series, as Prometheus stored them under its job.
  const std::pair<std::string, std::string> wanted[] = {
      {"cogo-edge", R"(cogo_http_requests_total{route="/functions/v1/orchestrator-chat",status="202"})"},
      {"cogo-orchestrator-brain", R"(cogo_worker_messages_total{service="orchestrator",role="decide",outcome="completed"})"},
      {"cogo-executor-dispatcher", R"(cogo_worker_messages_total{service="orchestrator",role="execute",outcome="completed"})"},
      {"cogo-gateway-chat", R"(cogo_worker_messages_total{service="gateway",role="chat",outcome="completed"})"},
      {"cogo-bus-reclaimer", R"(cogo_periodic_runs_total{task="reclaimer"})"},
      {"cogo-bus-retention", R"(cogo_periodic_runs_total{task="retention"})"},
      {"cogo-metrics-server", R"(cogo_bus_finished_last_24h{role="broken",outcome="failed"})"},
      {"cogo-metrics-server", R"(cogo_http_requests_total{route="/metrics"})"},
  };
  for (const auto& [job, selector] : wanted) {
    const auto query = selector.substr(0, selector.size() - 1) + ",job=\"" + job + "\"}";
    // A worker's completions count, whoever writes them (the executor commits its own).
    const bool counted = selector.find("outcome=\"completed\"") != std::string::npos;
    EXPECT_TRUE(WaitFor([&] {
      const auto found = series(query);
      return !found.empty() && (!counted || found[0]["value"][1] != "0");
    }, 30s)) << "no " << query << (counted ? " above 0" : "") << " in Prometheus: "
             << HttpGet(prometheus_port, "/api/v1/targets").body;
  }
  const auto failed = series(R"(cogo_bus_finished_last_24h{role="broken",outcome="failed"})");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["value"][1], "1");
  const auto up = series("up");
  EXPECT_EQ(up.size(), exporters.size() + 1);
  for (const auto& target : up) EXPECT_EQ(target["value"][1], "1") << target.dump();
  prometheus.Signal(SIGTERM);
  EXPECT_TRUE(prometheus.Wait(20s).has_value());
}

// Reads `data-value` and the text of the element with `id` from a dumped DOM.
std::pair<std::string, std::string> Figure(const std::string& dom, const std::string& id) {
  const std::regex pattern("id=\"" + id + "\"[^>]*data-value=\"([^\"]*)\"[^>]*>([^<]*)<");
  std::smatch m;
  if (!std::regex_search(dom, m, pattern)) return {"(absent)", "(absent)"};
  return {m[1], m[2]};
}

TEST_F(MetricsTest, TheDashboardInHeadlessChromiumShowsWhatTheApiReturns) {
  if (!Installed("/usr/bin/chromium")) FAIL() << "Debian chromium is not installed (scripts/bootstrap.sh installs it)";
  {
    auto echo = Worker("test", "echo", "complete");
    auto broken = Worker("test", "broken", "fail");
    for (int i = 0; i < 8; ++i) Publish(i % 2 ? "acme" : "globex", "test", "echo");
    Publish("acme", "test", "broken", R"({"n":1})", 1);
    Publish("acme", "test", "idle");
    ASSERT_TRUE(WaitFor([&] { return Count("status IN ('done', 'failed')") == 9; }));
  }
  const auto server = StartMetrics();
  const auto token = auth::MintToken(kTestJwtSecret, {auth::Role::kServiceRole, "", "ops", std::nullopt}, Now(), std::chrono::hours(1));
  const std::string url = "http://127.0.0.1:" + std::to_string(server->port()) + "/";
  auto chromium = [&](const std::string& what, const std::string& page, int virtual_ms = 10000) {
    const auto profile = dir_ + "/chromium-" + what;
    return RunCommand("/usr/bin/timeout",
                      {"90", "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                       "--user-data-dir=" + profile, "--window-size=1400,2000",
                       "--virtual-time-budget=" + std::to_string(virtual_ms), "--enable-logging=stderr", "--v=0", what,
                       page});
  };
  // 40 s of the page's (virtual) time: it refreshes itself every 15 s after the first load.
  const auto dom = chromium("--dump-dom", url + "#token=" + token, 40000);
  ASSERT_EQ(dom.status, 0) << dom.output;
  EXPECT_NE(dom.output.find(R"(data-state="ready")"), std::string::npos) << dom.output;
  EXPECT_NE(dom.output.find(R"(data-refreshes="3")"), std::string::npos) << "the page did not refresh itself";
  EXPECT_NE(dom.output.find(R"(data-console-errors="0")"), std::string::npos);
  for (const char* noise : {"Uncaught", "Failed to load resource", "Refused to", ":ERROR:CONSOLE"}) {
    EXPECT_EQ(dom.output.find(noise), std::string::npos) << noise << " in\n" << dom.output;
  }

  // The numbers on the cards are the API's (the page reads the 24h window by default).
  const auto latency = Get(server->port(), "/api/metrics/bus/latency?window=24h", Service());
  const auto depth = Get(server->port(), "/api/metrics/bus/depth", Service());
  const auto failures = Get(server->port(), "/api/metrics/bus/failures?window=24h", Service());
  auto same = [](const std::pair<std::string, std::string>& shown, const json& api, const std::string& name) {
    ASSERT_NE(shown.first, "(absent)") << name;
    if (api.is_null()) {
      EXPECT_EQ(shown.first, "") << name;
    } else {
      EXPECT_NEAR(std::stod(shown.first), api.get<double>(), 1e-9) << name;
    }
    EXPECT_FALSE(shown.second.empty()) << name;
  };
  same(Figure(dom.output, "wait-p50"), latency["total"]["wait_seconds"]["p50"], "wait p50");
  same(Figure(dom.output, "wait-p90"), latency["total"]["wait_seconds"]["p90"], "wait p90");
  same(Figure(dom.output, "wait-n"), latency["total"]["messages"], "messages");
  same(Figure(dom.output, "depth-queued"), depth["total"]["queued"], "queued");
  same(Figure(dom.output, "fail-rate"), failures["total"]["failure_rate"], "failure rate");
  same(Figure(dom.output, "fail-failed"), failures["total"]["failed"], "failed");
  same(Figure(dom.output, "alerts-n"), json(0), "alerts");
  EXPECT_EQ(Figure(dom.output, "wait-n").second, "9");
  EXPECT_EQ(Figure(dom.output, "fail-failed").second, "1");
  EXPECT_EQ(Figure(dom.output, "fail-rate").second, "11.1 %");

  // A screenshot kept with the build (CI keeps it as an artifact).
  const std::string shot = std::string(COGO_BUILD_DIR) + "/metrics-dashboard.png";
  std::filesystem::remove(shot);
  const auto taken = chromium("--screenshot=" + shot, url + "#token=" + token);
  ASSERT_EQ(taken.status, 0) << taken.output;
  EXPECT_GT(std::filesystem::file_size(shot), 10000u);

  // Without a token the page asks for one and shows no figures.
  const auto anonymous = chromium("--dump-dom", url);
  ASSERT_EQ(anonymous.status, 0) << anonymous.output;
  EXPECT_NE(anonymous.output.find(R"(data-state="login")"), std::string::npos) << anonymous.output;
  EXPECT_EQ(Figure(anonymous.output, "wait-n").first, "(absent)");
}

// Gate-verdict artifact links: the page fetches them from its own /api/artifacts with the token
// it holds (a link names the artifact in the fragment only), within the token's tenant.
TEST_F(MetricsTest, TheDashboardShowsArtifactsWithItsTokenWithinTheTenant) {
  if (!Installed("/usr/bin/chromium")) FAIL() << "Debian chromium is not installed (scripts/bootstrap.sh installs it)";
  const auto store = dir_ + "/artifacts";
  artifacts::ArtifactStore artifacts(store);
  ASSERT_EQ(artifacts.Write("task-7", "acme", "build-test",
                            {{"report.json", R"({"build": {"ok": true}, "tests": {"passed": 41, "failed": 0}})"},
                             {"test.log", "ok 41 tests\n"}},
                            {1, 1}),
            artifacts::WriteOutcome::written);
  // A run of that task (no brain: it stays running), listed with its links and opened in the run view.
  auto catalog = std::make_shared<workflow::DefinitionCatalog>(workflow::LoadDefinitions(dir_ + "/workflows"));
  catalog->Register(*conn_);
  const auto run = workflow::StartRun(*conn_, *catalog, {"acme", "gated", {{"ok", true}, {"taskId", "task-7"}}, ""}).run_id;
  const auto server = StartMetrics({"--artifacts-dir", store});
  const int port = server->port();
  const std::string report = "/api/artifacts/task-7/build-test/report.json";
  ExpectJsonError(HttpGet(port, report), 401, "missing_token", "no token");
  EXPECT_EQ(Get(port, report, Bearer("acme"))["tests"]["passed"], 41);
  ExpectJsonError(HttpGet(port, report, Bearer("globex")), 404, "not_found", "another tenant's task");
  EXPECT_EQ(Get(port, "/api/artifacts/task-7", Service())["files"].size(), 2u);

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto page = [&](const std::string& tenant, const std::string& artifact) {
    const auto token = auth::MintToken(kTestJwtSecret, {auth::Role::kAuthenticated, tenant, "ops", std::nullopt}, Now(),
                                       std::chrono::hours(1));
    const auto profile = dir_ + "/chromium-" + tenant;
    return RunCommand("/usr/bin/timeout",
                      {"90", "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                       "--user-data-dir=" + profile, "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0",
                       "--dump-dom", url + "#token=" + token + "&artifact=" + artifact});
  };
  const auto mine = page("acme", "task-7/build-test/report.json&run=" + std::to_string(run));
  ASSERT_EQ(mine.status, 0) << mine.output;
  EXPECT_NE(mine.output.find(R"(data-state="ready")"), std::string::npos) << mine.output;
  EXPECT_NE(mine.output.find(R"(href="#artifact=task-7/edits.json")"), std::string::npos) << mine.output;
  EXPECT_NE(mine.output.find(R"(href="#artifact=task-7/build-test/report.json")"), std::string::npos);
  EXPECT_NE(mine.output.find("gated v1 · acme · running"), std::string::npos) << "the run view";
  EXPECT_NE(mine.output.find(R"(id="artifact-body" data-state="shown")"), std::string::npos) << mine.output;
  EXPECT_NE(mine.output.find(R"("passed": 41)"), std::string::npos) << mine.output;
  EXPECT_NE(mine.output.find(R"(data-console-errors="0")"), std::string::npos) << mine.output;
  const auto listing = page("acme", "task-7");
  ASSERT_EQ(listing.status, 0) << listing.output;
  EXPECT_NE(listing.output.find(R"(href="#artifact=task-7/build-test/test.log")"), std::string::npos) << listing.output;
  const auto other = page("globex", "task-7/build-test/report.json");
  ASSERT_EQ(other.status, 0) << other.output;
  EXPECT_NE(other.output.find(R"(id="artifact-body" data-state="not_found")"), std::string::npos) << other.output;
  EXPECT_EQ(other.output.find(R"("passed")"), std::string::npos);
}

}  // namespace
}  // namespace cogo::testing
