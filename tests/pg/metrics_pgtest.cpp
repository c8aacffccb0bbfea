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

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "cogo/auth/jwt.h"
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
    for (int i = 0; i < 3; ++i) Publish("acme", "orchestrator", "decide", R"({"intent":"chat","payload":{"message":"hello metrics"}})");
    Publish("globex", "orchestrator", "decide", R"({"intent":"fragile","payload":{"message":"this breaks"}})");

    auto catalog = std::make_shared<workflow::DefinitionCatalog>(workflow::LoadDefinitions(dir_ + "/workflows"));
    catalog->Register(*conn_);
    passing_run_ = workflow::StartRun(*conn_, *catalog, {"acme", "gated", {{"ok", true}, {"taskId", "task-7"}}, ""}).run_id;
    failing_run_ = workflow::StartRun(*conn_, *catalog, {"globex", "gated", {{"ok", false}}, ""}).run_id;

    ASSERT_TRUE(WaitFor([&] {
      return Count("status IN ('queued', 'running') AND role <> 'idle' AND "
                   "NOT (role = 'workflow' AND retry_at > now() + interval '10 seconds')") == 0 &&
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
    EXPECT_EQ(d["total"]["queued"].get<int64_t>(), Count("status = 'queued'"));  // the timers too
    EXPECT_EQ(Find(d["routes"], {{"service", "orchestrator"}, {"role", "workflow"}})["delayed"], 2);
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
    EXPECT_EQ(Find(d["reasons"], {{"role", "broken"}, {"event", "failed"}})["reason"], "test handler");
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

// A port nobody listens on now (for tools that cannot report the port they bound): the kernel
// picks one for a socket that is closed again at once.
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

TEST_F(MetricsTest, PrometheusScrapesTheServerAndAWorkerAndPromtoolAcceptsBoth) {
  if (!Installed("/usr/bin/prometheus") || !Installed("/usr/bin/promtool")) {
    FAIL() << "Debian prometheus is not installed (scripts/bootstrap.sh installs it)";
  }
  const int worker_port = FreePort();
  setenv("COGO_METRICS_LISTEN", ("127.0.0.1:" + std::to_string(worker_port)).c_str(), 1);
  auto echo = Worker("test", "echo", "complete");
  unsetenv("COGO_METRICS_LISTEN");
  auto broken = Worker("test", "broken", "fail");
  for (int i = 0; i < 3; ++i) Publish("acme", "test", "echo");
  Publish("acme", "test", "broken", R"({"n":1})", 1);
  Publish("acme", "test", "idle");
  ASSERT_TRUE(WaitFor([&] { return Count("status IN ('done', 'failed')") == 4; }));
  const auto server = StartMetrics();

  // The exposition format as promtool's linter reads it, from both kinds of daemon.
  const auto text = HttpGet(server->port(), "/metrics", Service());
  ASSERT_EQ(text.status, 200);
  EXPECT_NE(text.headers.at("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(text.body.find(R"(cogo_bus_messages{role="idle",service="test",state="queued"} 1)"), std::string::npos) << text.body;
  const auto checked = RunCommand("/usr/bin/promtool", {"check", "metrics"}, text.body);
  EXPECT_EQ(checked.status, 0) << checked.output;
  const auto worker_text = HttpGet(worker_port, "/metrics");
  ASSERT_EQ(worker_text.status, 200);
  // The runtime's own counters, not only the exporter's (its registry once expired unseen).
  EXPECT_NE(worker_text.body.find(R"(cogo_worker_messages_total{outcome="completed",role="echo",service="test"} 3)"),
            std::string::npos) << worker_text.body;
  const auto worker_checked = RunCommand("/usr/bin/promtool", {"check", "metrics"}, worker_text.body);
  EXPECT_EQ(worker_checked.status, 0) << worker_checked.output;

  // A real Prometheus scraping both every second; the series must arrive within seconds.
  std::ofstream(dir_ + "/token") << auth::MintToken(kTestJwtSecret, {auth::Role::kServiceRole, "", "prometheus", std::nullopt},
                                                    Now(), std::chrono::hours(1));
  std::ofstream(dir_ + "/prometheus.yml") << "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
      "scrape_configs:\n"
      "  - job_name: cogo-metrics-server\n"
      "    authorization: {type: Bearer, credentials_file: " << dir_ << "/token}\n"
      "    static_configs: [{targets: ['127.0.0.1:" << server->port() << "']}]\n"
      "  - job_name: cogo-test-worker\n"
      "    static_configs: [{targets: ['127.0.0.1:" << worker_port << "']}]\n";
  const int prometheus_port = FreePort();
  ChildProcess prometheus("/usr/bin/prometheus",
                          {"--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/tsdb",
                           "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port), "--log.level=warn"},
                          ScratchFile("prometheus.log"));
  auto series = [&](const std::string& query) {
    const auto r = HttpGet(prometheus_port, "/api/v1/query?query=" + query);
    const auto body = json::parse(r.body, nullptr, false);
    return r.status == 200 && body.is_object() ? body["data"]["result"] : json::array();
  };
  EXPECT_TRUE(WaitFor([&] { return !series("cogo_bus_messages%7Brole%3D%22idle%22%7D").empty(); }, 30s))
      << "no cogo_bus_messages series from the metrics server";
  EXPECT_TRUE(WaitFor([&] { return !series("cogo_worker_messages_total").empty(); }, 30s))
      << "no cogo_worker_messages_total series from the worker: " << HttpGet(prometheus_port, "/api/v1/targets").body
      << "\n" << worker_text.body;
  const auto failed = series("cogo_bus_finished_last_24h%7Brole%3D%22broken%22,outcome%3D%22failed%22%7D");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["value"][1], "1");
  for (const auto& up : series("up")) EXPECT_EQ(up["value"][1], "1") << up.dump();
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
  auto chromium = [&](const std::string& what, const std::string& page) {
    const auto profile = dir_ + "/chromium-" + what;
    return RunCommand("/usr/bin/timeout",
                      {"90", "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                       "--user-data-dir=" + profile, "--window-size=1400,2000", "--virtual-time-budget=10000",
                       "--enable-logging=stderr", "--v=0", what, page});
  };
  const auto dom = chromium("--dump-dom", url + "#token=" + token);
  ASSERT_EQ(dom.status, 0) << dom.output;
  EXPECT_NE(dom.output.find(R"(data-state="ready")"), std::string::npos) << dom.output;
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

}  // namespace
}  // namespace cogo::testing
