// The upgrade workflow end to end: the real brain (decide, workflow engine, upgrade steps), the
// real executor and the agent's route served by the real chat gateway (offline provider) or a
// test worker, with the evaluation set replayed on both versions and decisions flowing while
// the canary runs. A candidate as good as the active version is promoted; one the worker fails
// is rolled back by the offline gate (replay) or, without a set, by the live gate; a person's
// `review` event stops one. The shipped definition is used with its observation window
// shortened to seconds.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "cogo/auth/jwt.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::map<std::string, std::string> kService = {
    {"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, "service_role", "", "ann")}};

class UpgradeTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
    std::string templ = (std::filesystem::temp_directory_path() / "cogo-test-upgrade.XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    // The shipped definitions (the routing rules name some), the upgrade's window shortened.
    for (const auto& file : std::filesystem::directory_iterator(SourcePath("config/workflows"))) {
      std::filesystem::copy_file(file.path(), dir_ + "/" + file.path().filename().string());
    }
    auto definition = json::parse(ReadFile(SourcePath("config/workflows/upgrade.json")));
    definition["nodes"]["observe"]["timeout"] = "3s";
    definition["nodes"]["observeMore"]["backoff"]["baseMs"] = 200;
    std::ofstream(dir_ + "/upgrade.json") << definition.dump(2);
  }
  void TearDown() override {
    worker_.reset();
    executor_.reset();
    brain_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Daemon> StartBrain(const std::string& log) {
    return std::make_unique<Daemon>(
        "cogo-orchestrator-brain",
        std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"), "--policy",
                                 SourcePath("config/policy.example.json"), "--workflows", dir_, "--eval-sets",
                                 SourcePath("config/eval"), "--poll-ms", "100", "--versions-refresh-ms", "100"},
        log);
  }
  // The real chat gateway with the offline provider.
  static std::unique_ptr<WorkerDaemon> StartGateway(const std::string& log) {
    return std::make_unique<WorkerDaemon>(
        "cogo-gateway-chat",
        std::vector<std::string>{"--policy", SourcePath("config/policy.example.json"), "--poll-ms", "100", "--concurrency", "8"},
        log);
  }
  static std::unique_ptr<WorkerDaemon> StartChatWorker(const std::string& log, const std::string& fail_version = "") {
    std::vector<std::string> args{"--service", "gateway", "--role", "chat", "--poll-ms", "100", "--concurrency", "8"};
    if (!fail_version.empty()) args.insert(args.end(), {"--fail-version", fail_version});
    return std::make_unique<WorkerDaemon>("cogo-test-worker", args, log);
  }

  // Proposes chat-assistant 2.0.0 and starts an upgrade run of it for the operator tenant, with
  // the evaluation set `set` ("" none).
  int64_t StartUpgrade(int port, const std::string& set = "routing") {
    const auto proposed = HttpPost(port, "/api/agents/chat-assistant/versions", R"({"version":"2.0.0"})", kService);
    EXPECT_EQ(proposed.status, 201) << proposed.body;
    json body = {{"workflowId", "upgrade"},
                       {"tenant", "ops"},
                       {"parameters",
                        {{"agentId", "chat-assistant"}, {"candidateVersion", "2.0.0"}, {"baselineVersion", "1.0.0"},
                         {"canaryWeight", 50}, {"minDecisions", 10}}}};
    if (!set.empty()) body["parameters"]["evaluationSet"] = set;
    const auto started = HttpPost(port, "/api/workflows/execute", body.dump(), kService);
    EXPECT_EQ(started.status, 202) << started.body;
    return json::parse(started.body).value("runId", int64_t{0});
  }
  static std::string Status(const std::string& version) {
    return ScalarText("SELECT status FROM agent_versions WHERE agent_id = 'chat-assistant' AND version = '" + version + "'");
  }
  static bool Ended(int64_t run) {
    return Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE status NOT IN ('running', 'waiting') AND id = " +
                           std::to_string(run)) == 1;
  }
  // "<status>/<reason>": a live run may carry the reason of a gate it is retrying after.
  static std::string RunStatus(int64_t run) {
    return ScalarText("SELECT status || '/' || coalesce(reason, '') FROM workflow_runs WHERE id = " + std::to_string(run));
  }
  // An upgrade run with chat traffic flowing once the canary is on (or the run ended), through
  // the real executor and `worker` (started once the replays are queued: the evaluation waits
  // for them); returns when it ended, the daemons still running.
  int64_t UpgradeUnderTraffic(const std::string& log, std::function<std::unique_ptr<WorkerDaemon>()> worker,
                              const std::string& set = "routing") {
    brain_ = StartBrain(log);
    executor_ = StartExecutor(log);
    const int64_t run = StartUpgrade(brain_->port(), set);
    if (!set.empty()) {
      EXPECT_TRUE(WaitFor([] { return Replays("queued") == 4; }, 30s)) << RunStatus(run) << ", see " << log;
    }
    worker_ = worker();
    // A candidate the offline gate refuses never gets its canary.
    EXPECT_TRUE(WaitFor([&] { return Status("2.0.0") == "canary" || Ended(run); }, 60s)) << RunStatus(run) << ", see " << log;
    Traffic(60);
    EXPECT_TRUE(WaitFor([&] { return Ended(run); }, 120s)) << RunStatus(run) << ", see " << log;
    return run;
  }
  // The replayed requests (two chat items on two versions) whose hand-off to gateway/chat is in `status`.
  static int64_t Replays(const std::string& status) {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages t JOIN agent_messages e ON t.parent_id = e.id "
                           "WHERE e.idempotency_key LIKE 'upgrade-replay:%' AND t.role = 'chat' AND t.status = '" +
                           status + "'");
  }
  static json StepOutput(int64_t run, const std::string& node) {
    return json::parse(ScalarText("SELECT output::text FROM workflow_steps WHERE run_id = " + std::to_string(run) +
                                  " AND node = '" + node + "' AND output IS NOT NULL ORDER BY activation DESC LIMIT 1"));
  }
  void Traffic(int n) {
    for (int i = 0; i < n; ++i) {
      (void)bus_->Publish(Message(R"({"tenant":"tenant-a","intent":"chat","payload":{"message":"hi"}})",
                                  "orchestrator", "decide"));
    }
  }

  std::string dir_;
  std::unique_ptr<Daemon> brain_;
  std::unique_ptr<WorkerDaemon> executor_;
  std::unique_ptr<WorkerDaemon> worker_;
};

TEST_F(UpgradeTest, ACandidateAsGoodAsTheActiveVersionIsPromoted) {
  const auto log = ScratchFile("upgrade-promote.log");
  const int64_t run = UpgradeUnderTraffic(log, [&] { return StartGateway(log); });
  EXPECT_EQ(RunStatus(run), "succeeded/");
  EXPECT_EQ(Status("2.0.0"), "active");
  EXPECT_EQ(Status("1.0.0"), "retired");
  EXPECT_EQ(ScalarText("SELECT weight::text FROM agent_versions WHERE version = '2.0.0'"), "100.00");
  EXPECT_EQ(ScalarText("SELECT reason FROM agent_version_events WHERE action = 'promoted'"),
            "upgrade run " + std::to_string(run) + " promoted: liveGate passed");
  // Both versions served during the canary, each decision recording which and whether canary.
  EXPECT_GT(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE version = '2.0.0' AND canary"), 0);
  EXPECT_GT(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE version = '1.0.0' AND NOT canary"), 0);
  // Every change is the run's, tied to the step message that made it, and on the run's trail.
  const std::string actor = "workflow:" + std::to_string(run);
  EXPECT_EQ(ScalarText("SELECT string_agg(version || ' ' || action, ', ' ORDER BY id) FROM agent_version_events "
                       "WHERE actor = '" + actor + "' AND message_id IS NOT NULL"),
            "1.0.0 weight, 2.0.0 canary, 1.0.0 retired, 2.0.0 promoted");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event LIKE 'upgrade_%' AND message_id NOT IN "
                            "(SELECT id FROM agent_messages WHERE correlation_id = 'wf:" + std::to_string(run) + "')"), 0);
  const auto trail = ScalarText("SELECT string_agg(event, ' ' ORDER BY id) FROM bus_events WHERE event LIKE 'upgrade_%'");
  EXPECT_EQ(trail.rfind("upgrade_replay upgrade_evaluate upgrade_canary upgrade_measure", 0), 0u) << trail;
  EXPECT_EQ(trail.substr(trail.size() - std::string("upgrade_promote").size()), "upgrade_promote") << trail;
  const auto measured = StepOutput(run, "measure");
  EXPECT_EQ(measured["candidate"]["failure_rate"], 0.0);
  EXPECT_GE(measured["candidate"]["judged"].get<int64_t>(), 10);
  // The set's two chat requests ran on each version through the executor and the gateway (the
  // evaluation waited for them: the gateway started after they were queued), and the gate
  // read the comparison.
  const auto evaluated = StepOutput(run, "evaluate");
  for (const char* side : {"candidate", "baseline"}) {
    const auto& v = evaluated[side];
    EXPECT_EQ(v["admitted"], true) << side;
    EXPECT_EQ(v["requests"], 2) << side << ": " << v.dump();
    EXPECT_EQ(v["done"], 2) << side;
    EXPECT_EQ(v["failure_rate"], 0.0) << side;
    EXPECT_GT(v["latency_p90_ms"].get<double>(), 0) << side;
    EXPECT_EQ(v["correct"], 4) << side << ": " << v.dump();  // 2 chat + 2 summarize; the classifier's 2 refused
    EXPECT_EQ(v["routing"]["items"], 6) << side;
  }
  EXPECT_EQ(evaluated["candidate"]["version"], "2.0.0");
  EXPECT_EQ(evaluated["failure_rate_delta"], 0.0);
  EXPECT_EQ(evaluated["quality_delta"], 0.0);
  EXPECT_EQ(evaluated["latency_within_slo"], true);
  EXPECT_EQ(evaluated["cost_within_baseline"], true);
  EXPECT_EQ(ScalarText("SELECT verdict FROM (SELECT output->>'verdict' AS verdict FROM workflow_steps WHERE run_id = " +
                       std::to_string(run) + " AND node = 'offlineGate') g"), "pass");
  EXPECT_EQ(ScalarText("SELECT string_agg(DISTINCT payload->'__assignment'->>'version', ',') FROM agent_messages "
                       "WHERE role = 'chat' AND parent_id IN (SELECT id FROM agent_messages WHERE idempotency_key LIKE 'upgrade-replay:%')"),
            "1.0.0,2.0.0");
  // The replays are the run's (its trail), not decisions: the decision figures stay live traffic's.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE idempotency_key LIKE 'upgrade-replay:%' "
                            "AND correlation_id <> 'wf:" + std::to_string(run) + "'"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE tenant = 'ops'"), 0);
}

TEST_F(UpgradeTest, ACandidateThatFailsTheReplayIsRolledBackBeforeItsCanary) {
  const auto log = ScratchFile("upgrade-replay-rollback.log");
  const int64_t run = UpgradeUnderTraffic(log, [&] { return StartChatWorker(log, "2.0.0"); });
  EXPECT_EQ(RunStatus(run), "failed/rolled_back");
  EXPECT_EQ(Status("2.0.0"), "retired");
  EXPECT_EQ(Status("1.0.0"), "active");
  const auto evaluated = StepOutput(run, "evaluate");
  EXPECT_EQ(evaluated["candidate"]["requests"], 2) << evaluated.dump();
  EXPECT_EQ(evaluated["candidate"]["failed"], 2);
  EXPECT_EQ(evaluated["candidate"]["failure_rate"], 1.0);
  EXPECT_EQ(evaluated["baseline"]["failure_rate"], 0.0);
  EXPECT_EQ(evaluated["failure_rate_delta"], 1.0);
  EXPECT_LT(evaluated["quality_delta"].get<double>(), 0);
  const auto reason = ScalarText("SELECT reason FROM agent_version_events WHERE action = 'rolled_back'");
  EXPECT_NE(reason.find("offlineGate failed"), std::string::npos) << reason;
  EXPECT_NE(reason.find("failure_rate_delta"), std::string::npos) << reason;
  EXPECT_NE(reason.find("quality_delta"), std::string::npos) << reason;
  // It never served a live request: no canary, no decision of 2.0.0.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE run_id = " + std::to_string(run) +
                            " AND node = 'canary'"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE version = '2.0.0'"), 0);
}

// Without an evaluation set nothing is replayed: the live gate catches the candidate.
TEST_F(UpgradeTest, ACandidateThatFailsMoreIsRolledBackByTheLiveGate) {
  const auto log = ScratchFile("upgrade-rollback.log");
  const int64_t run = UpgradeUnderTraffic(log, [&] { return StartChatWorker(log, "2.0.0"); }, "");
  EXPECT_EQ(RunStatus(run), "failed/rolled_back");
  EXPECT_EQ(Status("2.0.0"), "retired");
  EXPECT_EQ(Status("1.0.0"), "active");
  EXPECT_EQ(ScalarText("SELECT weight::text FROM agent_versions WHERE version = '1.0.0'"), "100.00");
  const auto reason = ScalarText("SELECT reason FROM agent_version_events WHERE action = 'rolled_back'");
  EXPECT_NE(reason.find("liveGate failed"), std::string::npos) << reason;
  EXPECT_NE(reason.find("failure_rate_delta"), std::string::npos) << reason;
  EXPECT_EQ(ScalarText("SELECT verdict FROM (SELECT output->>'verdict' AS verdict, activation FROM workflow_steps "
                       "WHERE run_id = " + std::to_string(run) + " AND node = 'liveGate') g"), "fail");
  // The quality figure shows why: the candidate's decisions failed, the baseline's did not.
  EXPECT_EQ(ScalarText("SELECT count(*) FROM decision_outcomes WHERE version = '2.0.0' AND correct"), "0");
  EXPECT_EQ(ScalarText("SELECT count(*) FROM decision_outcomes WHERE version = '1.0.0' AND correct = false"), "0");
  // After the rollback every new decision goes to 1.0.0.
  std::this_thread::sleep_for(300ms);
  const auto before = Scalar<int64_t>("SELECT coalesce(max(id), 0) FROM decisions");
  Traffic(20);
  ASSERT_TRUE(WaitFor([&] { return Scalar<int64_t>("SELECT count(*) FROM decisions WHERE id > " + std::to_string(before)) == 20; }));
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE id > " + std::to_string(before) + " AND version <> '1.0.0'"), 0);
}

TEST_F(UpgradeTest, APersonStopsTheCanaryWithAReviewEvent) {
  const auto log = ScratchFile("upgrade-stop.log");
  const auto brain = StartBrain(log);
  const int64_t run = StartUpgrade(brain->port(), "");  // nothing to replay: no agent workers here
  ASSERT_TRUE(WaitFor([] { return Status("2.0.0") == "canary"; }, 30s)) << RunStatus(run) << ", see " << log;
  // The state snapshot shows the experiment: the run beside the versions' weights.
  const auto state = [&] {
    return json::parse(HttpGet(brain->port(), "/api/orchestrator/state", kService).body)["agents"]["chat-assistant"];
  };
  auto agent = state();
  ASSERT_EQ(agent["experiments"].size(), 1u) << agent.dump();
  EXPECT_EQ(agent["experiments"][0]["runId"], run);
  EXPECT_EQ(agent["experiments"][0]["candidate"], "2.0.0");
  EXPECT_EQ(agent["experiments"][0]["baseline"], "1.0.0");
  EXPECT_EQ(agent["experiments"][0]["canaryWeight"], 50);
  EXPECT_EQ(agent["versions"][1]["weight"], 50.0) << agent.dump();
  EXPECT_EQ(agent["versions"][1]["status"], "canary");
  const auto stop = HttpPost(brain->port(), "/api/workflows/runs/" + std::to_string(run) + "/events",
                             R"({"name":"review","data":{"action":"stop","by":"ann","reason":"the replies look odd"}})",
                             kService);
  ASSERT_EQ(stop.status, 202) << stop.body;
  ASSERT_TRUE(WaitFor([&] { return RunStatus(run) == "failed/rolled_back"; }, 30s)) << RunStatus(run) << ", see " << log;
  EXPECT_EQ(Status("2.0.0"), "retired");
  EXPECT_EQ(Status("1.0.0"), "active");
  EXPECT_EQ(ScalarText("SELECT reason FROM agent_version_events WHERE action = 'rolled_back'"),
            "upgrade run " + std::to_string(run) + " rolled back: stop by ann: the replies look odd");
  EXPECT_EQ(state()["experiments"].size(), 0u);
  // No measurement was needed: the person decided.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE run_id = " + std::to_string(run) +
                            " AND node = 'liveGate'"), 0);
}

TEST_F(UpgradeTest, APersonApprovesTheCanaryWithAReviewEvent) {
  const auto log = ScratchFile("upgrade-approve.log");
  const auto brain = StartBrain(log);
  const int64_t run = StartUpgrade(brain->port(), "");
  ASSERT_TRUE(WaitFor([] { return Status("2.0.0") == "canary"; }, 30s)) << RunStatus(run) << ", see " << log;
  ASSERT_EQ(HttpPost(brain->port(), "/api/workflows/runs/" + std::to_string(run) + "/events",
                     R"({"name":"review","data":{"action":"approve","by":"bob"}})", kService).status, 202);
  ASSERT_TRUE(WaitFor([&] { return Ended(run); }, 30s)) << RunStatus(run) << ", see " << log;
  EXPECT_EQ(RunStatus(run), "succeeded/");
  EXPECT_EQ(Status("2.0.0"), "active");
  EXPECT_EQ(Status("1.0.0"), "retired");
  EXPECT_EQ(ScalarText("SELECT reason FROM agent_version_events WHERE action = 'promoted'"),
            "upgrade run " + std::to_string(run) + " promoted: approve by bob");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE run_id = " + std::to_string(run) +
                            " AND node = 'measure'"), 0);
}

// Only an operator (a service_role token) starts, signals or cancels an upgrade, over HTTP: a
// tenant token, the operator tenant's own included, gets 403 service_role_required. A tenant
// still starts the workflows that are not an operator's.
TEST_F(UpgradeTest, OnlyAServiceRoleTokenStartsSignalsOrCancelsAnUpgrade) {
  const auto log = ScratchFile("upgrade-access.log");
  const auto brain = StartBrain(log);
  const int port = brain->port();
  const auto token = [](const std::string& tenant) {
    return std::map<std::string, std::string>{
        {"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, "authenticated", tenant, "mallory")}};
  };
  const std::string upgrade = R"({"workflowId":"upgrade","parameters":{"agentId":"chat-assistant",)"
                              R"("candidateVersion":"2.0.0","baselineVersion":"1.0.0","canaryWeight":100}})";
  for (const std::string tenant : {"acme", "ops"}) {
    const auto refused = HttpPost(port, "/api/workflows/execute", upgrade, token(tenant));
    EXPECT_EQ(refused.status, 403) << tenant << ": " << refused.body;
    EXPECT_EQ(json::parse(refused.body).value("error", ""), "service_role_required") << tenant;
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs"), 0);
  // Another workflow is still a tenant's to start.
  const auto indexing = HttpPost(port, "/api/workflows/execute",
                                 R"({"workflowId":"indexing","parameters":{"doc_id":"d1","title":"t","text":"x"}})",
                                 token("acme"));
  EXPECT_EQ(indexing.status, 202) << indexing.body;

  const int64_t run = StartUpgrade(port);
  const std::string base = "/api/workflows/runs/" + std::to_string(run);
  const auto review = R"({"name":"review","data":{"action":"approve","by":"mallory"}})";
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{{base + "/events", review},
                                                                                   {base + "/cancel", "{}"}}) {
    const auto as_ops = HttpPost(port, path, body, token("ops"));
    EXPECT_EQ(as_ops.status, 403) << path << ": " << as_ops.body;
    EXPECT_EQ(json::parse(as_ops.body).value("error", ""), "service_role_required") << path;
    EXPECT_EQ(HttpPost(port, path, body, token("acme")).status, 404) << path;  // not acme's run
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_signals"), 0);
  const auto cancelled = HttpPost(port, base + "/cancel", R"({"reason":"access test"})", kService);
  EXPECT_EQ(cancelled.status, 200) << cancelled.body;
}

// The worker's own guard, behind the API's: a run an operator starts for another tenant acts
// on nothing.
TEST_F(UpgradeTest, OnlyTheOperatorTenantsRunsMayChangeVersions) {
  const auto log = ScratchFile("upgrade-tenant.log");
  const auto brain = StartBrain(log);
  ASSERT_EQ(HttpPost(brain->port(), "/api/agents/chat-assistant/versions", R"({"version":"2.0.0"})", kService).status, 201);
  const auto started = HttpPost(brain->port(), "/api/workflows/execute",
                                R"({"workflowId":"upgrade","tenant":"acme","parameters":{"agentId":"chat-assistant",)"
                                R"("candidateVersion":"2.0.0","baselineVersion":"1.0.0","canaryWeight":100}})",
                                kService);
  ASSERT_EQ(started.status, 202) << started.body;
  const int64_t run = json::parse(started.body)["runId"];
  ASSERT_TRUE(WaitFor([&] { return RunStatus(run) == "failed/step_failed"; }, 30s)) << RunStatus(run) << ", see " << log;
  EXPECT_EQ(Status("2.0.0"), "proposed");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_version_events WHERE actor LIKE 'workflow:%'"), 0);
}

}  // namespace
}  // namespace cogo::testing
