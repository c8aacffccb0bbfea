// The workflow engine with the real brain and cogo-test-worker daemons on a real PostgreSQL:
// every node type's paths, webhooks against a real local receiver, cancel, budget, stuck runs,
// and the brain SIGKILLed under 200 concurrent runs (every run ends once, no step twice).
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "cogo/auth/jwt.h"
#include "cogo/config/files.h"
#include "cogo/db/connection.h"
#include "cogo/workflow/runs.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// work (test/echo) -> wait (retry on failure) -> gate on the echoed `ok` -> wait for `approve`
// -> notify -> done. The worker's result is {"echo": <payload>}.
constexpr const char* kFiveTypes = R"({
  "parameters": {"ok": {"type": "boolean"}, "hook": {"type": "string"}, "route": {"type": "string", "required": false}},
  "limits": {"maxCostUsd": 1, "maxTokens": 1000},
  "start": "work",
  "nodes": {
    "work": {"type": "publish", "service": "test", "role": "echo", "payload": {"ok": "${/parameters/ok}"},
             "next": "waitWork"},
    "waitWork": {"type": "wait", "step": "work", "timeout": "60s", "next": "gate", "onFail": "retryWork"},
    "retryWork": {"type": "retry", "target": "work", "maxRetries": 1, "backoff": {"baseMs": 200, "jitter": 0}},
    "gate": {"type": "gate", "assert": [{"path": "/steps/work/output/echo/ok", "op": "==", "value": true}],
             "onPass": "approval"},
    "approval": {"type": "wait", "event": "approve", "timeout": "60s", "lookback": "1m", "next": "hook"},
    "hook": {"type": "notify", "url": "${/parameters/hook}", "body": {"approvedBy": "${/steps/approval/output/by}"},
             "maxAttempts": 3, "next": "waitHook"},
    "waitHook": {"type": "wait", "step": "hook", "timeout": "60s", "next": "done", "onFail": "hookFailed"},
    "done": {"type": "end"},
    "hookFailed": {"type": "end", "status": "failed", "reason": "receiver_down"}
  }
})";

// A step on a route that may be broken: retried after 2 s, at most twice.
constexpr const char* kFlaky = R"({
  "start": "work",
  "nodes": {
    "work": {"type": "publish", "service": "test", "role": "flaky", "payload": {}, "maxAttempts": 1, "next": "waitWork"},
    "waitWork": {"type": "wait", "step": "work", "timeout": "60s", "next": "done", "onFail": "again"},
    "again": {"type": "retry", "target": "work", "maxRetries": 2, "backoff": {"baseMs": 2000, "jitter": 0}},
    "done": {"type": "end"}
  }
})";

// A step nobody serves, with a short wait.
constexpr const char* kTimeout = R"({
  "start": "work",
  "nodes": {
    "work": {"type": "publish", "service": "test", "role": "nobody", "payload": {}, "next": "waitWork"},
    "waitWork": {"type": "wait", "step": "work", "timeout": "1s", "next": "done"},
    "done": {"type": "end"}
  }
})";

// Two steps at once, each handed 0.6 of a 1.0 budget: the second finds too little left.
constexpr const char* kBudget = R"({
  "limits": {"maxCostUsd": 1.0, "maxTokens": 1000},
  "start": "a",
  "nodes": {
    "a": {"type": "publish", "service": "test", "role": "nobody", "payload": {},
          "assignment": {"agentId": "t", "version": "v1", "model": "m", "ttlMs": 60000, "maxCostUsd": 0.6}, "next": "b"},
    "b": {"type": "publish", "service": "test", "role": "nobody", "payload": {},
          "assignment": {"agentId": "t", "version": "v1", "model": "m", "ttlMs": 60000, "maxCostUsd": 0.6}, "next": "w"},
    "w": {"type": "wait", "step": "a", "timeout": "1h", "next": "done"},
    "done": {"type": "end"}
  }
})";

// Three no-op steps in a row: the crash test and the benchmark's shape.
constexpr const char* kThreeSteps = R"({
  "start": "s1",
  "nodes": {
    "s1": {"type": "publish", "service": "test", "role": "echo", "payload": {"n": 1}, "next": "w1"},
    "w1": {"type": "wait", "step": "s1", "timeout": "10m", "next": "s2"},
    "s2": {"type": "publish", "service": "test", "role": "echo", "payload": {"n": 2}, "next": "w2"},
    "w2": {"type": "wait", "step": "s2", "timeout": "10m", "next": "s3"},
    "s3": {"type": "publish", "service": "test", "role": "echo", "payload": {"n": 3}, "next": "w3"},
    "w3": {"type": "wait", "step": "s3", "timeout": "10m", "next": "done"},
    "done": {"type": "end"}
  }
})";

// A local webhook receiver: records bodies and signatures; answers from a script of statuses.
class Receiver {
 public:
  explicit Receiver(std::vector<int> statuses) : statuses_(std::move(statuses)) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      calls_.push_back({req.body, req.get_header_value("X-Cogo-Signature")});
      const size_t i = std::min(calls_.size() - 1, statuses_.size() - 1);
      res.status = statuses_[i];
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::vector<int> statuses_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> calls_;
};

constexpr const char* kNotifySecret = "notify-secret-for-tests";

// The example's agent rules (its workflow rules name definitions these tests do not load)
// plus two intents that start the tests' workflows.
std::string WorkflowRouting() {
  auto routing = json::parse(config::ReadFile(SourcePath("config/routing.example.json")));
  for (auto it = routing["rules"].begin(); it != routing["rules"].end();) {
    it = it.value().contains("workflow") ? routing["rules"].erase(it) : std::next(it);
  }
  routing["rules"]["three"] = {{"workflow", "threeSteps"}, {"description", "three echo steps"}};
  routing["rules"]["five"] = {{"workflow", "fiveTypes"}};
  const auto path = ScratchFile("wf-routing.json");
  std::ofstream(path) << routing.dump();
  return path;
}


class WorkflowTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    // A directory of its own: a scratch name can repeat when the test process's pid does.
    std::string templ = (std::filesystem::temp_directory_path() / "cogo-test-workflows.XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    for (const auto& [name, text] : std::map<std::string, const char*>{
             {"fiveTypes", kFiveTypes}, {"flaky", kFlaky}, {"timeout", kTimeout},
             {"budget", kBudget}, {"threeSteps", kThreeSteps}}) {
      std::ofstream(dir_ + "/" + name + ".json") << text;
    }
    catalog_ = std::make_shared<workflow::DefinitionCatalog>(workflow::LoadDefinitions(dir_));
    catalog_->Register(*conn_);
    setenv("COGO_NOTIFY_SECRET", kNotifySecret, 1);
    ExportEdgeSecrets();
    routing_ = WorkflowRouting();
  }

  std::unique_ptr<Daemon> StartBrain(const std::string& log) {
    return std::make_unique<Daemon>(
        "cogo-orchestrator-brain",
        std::vector<std::string>{"--routing", routing_, "--policy",
                                 SourcePath("config/policy.example.json"), "--workflows", dir_,
                                 "--poll-ms", "100", "--lease-ms", "2000", "--heartbeat-ms", "500"},
        log);
  }
  static std::unique_ptr<WorkerDaemon> StartWorker(const std::string& role, const std::string& outcome,
                                                   const std::string& log) {
    return std::make_unique<WorkerDaemon>(
        "cogo-test-worker",
        std::vector<std::string>{"--service", "test", "--role", role, "--outcome", outcome, "--poll-ms", "100",
                                 "--concurrency", "8"},
        log);
  }

  int64_t Start(const std::string& workflow, json parameters, const std::string& tenant = "acme") {
    workflow::StartRequest request{tenant, workflow, std::move(parameters), ""};
    return workflow::StartRun(*conn_, *catalog_, request).run_id;
  }
  static std::string Status(int64_t run) {
    return ScalarText("SELECT status FROM workflow_runs WHERE id = " + std::to_string(run));
  }
  static bool Ends(int64_t run, const std::string& status, std::chrono::milliseconds timeout = 30s) {
    return WaitFor([&] { return Status(run) == status; }, timeout);
  }
  static std::string Reason(int64_t run) {
    return ScalarText("SELECT coalesce(reason, '') FROM workflow_runs WHERE id = " + std::to_string(run));
  }
  json View(int64_t run) {
    pqxx::read_transaction txn(*conn_);
    return json::parse(*workflow::RunViewJson(txn, run, std::nullopt));
  }
  static std::vector<std::string> Events(const json& view) {
    std::vector<std::string> out;
    for (const auto& e : view["events"]) out.push_back(e["event"]);
    return out;
  }
  static bool Has(const std::vector<std::string>& events, const std::string& name) {
    return std::find(events.begin(), events.end(), name) != events.end();
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::string routing_;
  std::shared_ptr<workflow::DefinitionCatalog> catalog_;
};

TEST_F(WorkflowTest, AllFiveNodeTypesOnTheSuccessPath) {
  const auto log = ScratchFile("wf-success.log");
  Receiver receiver({200});
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const int64_t run = Start("fiveTypes", {{"ok", true}, {"hook", receiver.url()}});
  ASSERT_TRUE(WaitFor([&] { return Status(run) == "waiting"; })) << Status(run) << ", see " << log;
  pqxx::connection conn(DatabaseUrl());
  (void)workflow::DeliverSignal(conn, run, "acme", "approve", {{"by", "ann"}});
  ASSERT_TRUE(Ends(run, "succeeded")) << Status(run) << ", see " << log;

  const auto calls = receiver.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(json::parse(calls[0].first)["approvedBy"], "ann");
  EXPECT_EQ(calls[0].second, "sha256=" + workflow::SignBody(kNotifySecret, calls[0].first));

  const json view = View(run);
  EXPECT_EQ(view["workflowId"], "fiveTypes");
  EXPECT_EQ(view["gates"][0]["verdict"], "pass");
  EXPECT_EQ(view["gates"][0]["checks"][0]["actual"], true);
  std::vector<std::string> nodes;
  for (const auto& s : view["steps"]) nodes.push_back(s["node"]);
  EXPECT_EQ(nodes, (std::vector<std::string>{"work", "waitWork", "gate", "approval", "hook", "waitHook", "done"}));
  const auto events = Events(view);
  for (const char* e : {"workflow_started", "step_started", "step_done", "gate_passed", "workflow_waiting",
                        "event_received", "notify_sent", "workflow_done"}) {
    EXPECT_TRUE(Has(events, e)) << e;
  }
  // Every step message once, the run's outcome once.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'test'"), 1);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'workflow_done'"), 1);
  // Each satisfied wait's timer was cancelled with it: nothing of the run is left in the queue.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'queued'"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages m JOIN bus_events e ON e.message_id = m.id "
                            "WHERE m.status = 'cancelled' AND m.payload->>'kind' = 'timer' "
                            "AND e.event = 'cancelled' AND e.detail->>'reason' = 'wait_satisfied'"),
            3);  // waitWork, approval, waitHook
}

TEST_F(WorkflowTest, GateFailureEndsTheRunFailedWithTheValuesOnTheTrail) {
  const auto log = ScratchFile("wf-gate.log");
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const int64_t run = Start("fiveTypes", {{"ok", false}, {"hook", "http://127.0.0.1:9/x"}});
  ASSERT_TRUE(Ends(run, "failed")) << Status(run) << ", see " << log;
  EXPECT_EQ(Reason(run), "gate_failed");
  const json view = View(run);
  EXPECT_EQ(view["gates"][0]["verdict"], "fail");
  EXPECT_EQ(view["gates"][0]["checks"][0]["actual"], false);
  EXPECT_TRUE(Has(Events(view), "gate_failed"));
}

TEST_F(WorkflowTest, AFailedStepIsRetriedAndThenSucceeds) {
  const auto log = ScratchFile("wf-retry.log");
  const auto brain = StartBrain(log);
  const int64_t run = Start("flaky", json::object());
  {
    const auto broken = StartWorker("flaky", "fail", log);
    ASSERT_TRUE(WaitFor([&] {
      return Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE node = 'again' AND status = 'waiting'") == 1;
    })) << "see " << log;
  }
  // The route is fixed during the backoff: the second try succeeds.
  const auto fixed = StartWorker("flaky", "complete", log);
  ASSERT_TRUE(Ends(run, "succeeded")) << Status(run) << ", see " << log;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE node = 'work'"), 2);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'flaky'"), 2);
}

TEST_F(WorkflowTest, RetriesExhaustedFailTheRun) {
  const auto log = ScratchFile("wf-exhausted.log");
  const auto brain = StartBrain(log);
  const auto broken = StartWorker("flaky", "fail", log);
  const int64_t run = Start("flaky", json::object());
  ASSERT_TRUE(Ends(run, "failed", 60s)) << Status(run) << ", see " << log;
  EXPECT_EQ(Reason(run), "retry_exhausted");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'flaky'"), 3);
}

TEST_F(WorkflowTest, AWaitTimesOut) {
  const auto log = ScratchFile("wf-timeout.log");
  const auto brain = StartBrain(log);
  const int64_t run = Start("timeout", json::object());
  ASSERT_TRUE(Ends(run, "timed_out")) << Status(run) << ", see " << log;
  EXPECT_EQ(Reason(run), "wait_timeout");
  EXPECT_TRUE(Has(Events(View(run)), "timer_fired"));
}

TEST_F(WorkflowTest, AnEventThatArrivesBeforeTheWaitIsNotLost) {
  const auto log = ScratchFile("wf-early.log");
  Receiver receiver({200});
  const int64_t run = Start("fiveTypes", {{"ok", true}, {"hook", receiver.url()}});
  // The brain is not even running: the approval arrives before the run reaches its wait.
  (void)workflow::DeliverSignal(*conn_, run, std::nullopt, "approve", {{"by", "early"}});
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  ASSERT_TRUE(Ends(run, "succeeded")) << Status(run) << ", see " << log;
  EXPECT_EQ(json::parse(receiver.calls().at(0).first)["approvedBy"], "early");
}

TEST_F(WorkflowTest, NotifyIsRetriedAfterA500AndDeliveredOnce) {
  const auto log = ScratchFile("wf-notify.log");
  Receiver receiver({500, 200});
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const int64_t run = Start("fiveTypes", {{"ok", true}, {"hook", receiver.url()}});
  ASSERT_TRUE(WaitFor([&] { return Status(run) == "waiting"; })) << "see " << log;
  (void)workflow::DeliverSignal(*conn_, run, std::nullopt, "approve", {{"by", "bob"}});
  ASSERT_TRUE(Ends(run, "succeeded")) << Status(run) << ", see " << log;
  EXPECT_EQ(receiver.calls().size(), 2u);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'notify_sent'"), 1);
}

TEST_F(WorkflowTest, AReceiverThatIsDownDeadLettersTheNotification) {
  const auto log = ScratchFile("wf-down.log");
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const int64_t run = Start("fiveTypes", {{"ok", true}, {"hook", "http://127.0.0.1:9/hook"}});
  ASSERT_TRUE(WaitFor([&] { return Status(run) == "waiting"; })) << "see " << log;
  (void)workflow::DeliverSignal(*conn_, run, std::nullopt, "approve", {{"by", "bob"}});
  // The node's wait says what a dead notification means: here, the run fails by name.
  ASSERT_TRUE(Ends(run, "failed", 60s)) << Status(run) << ", see " << log;
  EXPECT_EQ(Reason(run), "receiver_down");
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE role = 'notify'"), "dead");
}

TEST_F(WorkflowTest, CancelEndsTheRunAndItsMessages) {
  const auto log = ScratchFile("wf-cancel.log");
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const int64_t run = Start("fiveTypes", {{"ok", true}, {"hook", "http://127.0.0.1:9/x"}});
  ASSERT_TRUE(WaitFor([&] { return Status(run) == "waiting"; })) << "see " << log;
  workflow::CancelRun(*conn_, run, std::nullopt, "operator");
  EXPECT_EQ(Status(run), "cancelled");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE status IN ('running', 'waiting')"), 0);
  EXPECT_TRUE(Has(Events(View(run)), "workflow_cancelled"));
  try {
    (void)workflow::DeliverSignal(*conn_, run, std::nullopt, "approve", json::object());
    ADD_FAILURE() << "an event for a finished run must be refused";
  } catch (const workflow::RunError& e) {
    EXPECT_EQ(e.reason(), "run_finished");
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_signals"), 0);
}

TEST_F(WorkflowTest, ABudgetThatRunsOutFailsTheRunByName) {
  const auto log = ScratchFile("wf-budget.log");
  const auto brain = StartBrain(log);
  const int64_t run = Start("budget", json::object());
  ASSERT_TRUE(Ends(run, "failed")) << Status(run) << ", see " << log;
  EXPECT_EQ(Reason(run), "budget_exhausted");
  // The first step was handed 0.6; the second got nothing and was never published.
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'test'"), 1);
  EXPECT_EQ(ScalarText("SELECT payload->'__assignment'->'budget'->>'maxCostUsd' FROM agent_messages WHERE service = 'test'"),
            "0.6");
}

TEST_F(WorkflowTest, BadStartsAreRefusedAndWriteNothing) {
  const auto refused = [&](const std::string& workflow, json parameters) {
    try {
      (void)Start(workflow, std::move(parameters));
    } catch (const workflow::RunError& e) {
      return e.reason();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(refused("noSuchFlow", json::object()), "unknown_workflow");
  EXPECT_EQ(refused("fiveTypes", {{"ok", "yes"}, {"hook", "x"}}), "wrong_type");
  EXPECT_EQ(refused("fiveTypes", {{"hook", "x"}}), "missing_key");
  EXPECT_EQ(refused("fiveTypes", {{"ok", true}, {"hook", "x"}, {"extra", 1}}), "unknown_key");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 0);
}

TEST_F(WorkflowTest, TenantsSeeOnlyTheirRuns) {
  const int64_t mine = Start("timeout", json::object(), "acme");
  const int64_t theirs = Start("timeout", json::object(), "globex");
  pqxx::read_transaction txn(*conn_);
  EXPECT_TRUE(workflow::RunViewJson(txn, mine, "acme").has_value());
  EXPECT_FALSE(workflow::RunViewJson(txn, theirs, "acme").has_value());
  const auto listed = json::parse(workflow::ListRunsJson(txn, {std::string("acme"), {}, {}, {}, 50}));
  ASSERT_EQ(listed["runs"].size(), 1u);
  EXPECT_EQ(listed["runs"][0]["runId"], mine);
  txn.commit();
  EXPECT_THROW(workflow::CancelRun(*conn_, theirs, "acme", "x"), workflow::RunError);
  EXPECT_EQ(Status(theirs), "running");
}

TEST_F(WorkflowTest, ARunThatNothingWillAdvanceIsReportedStuck) {
  const auto log = ScratchFile("wf-stuck.log");
  const int64_t run = Start("timeout", json::object());
  {
    const auto brain = StartBrain(log);
    ASSERT_TRUE(WaitFor([&] {
      return Scalar<int64_t>("SELECT count(*) FROM workflow_steps WHERE node = 'waitWork'") == 1;
    })) << "see " << log;
  }
  // Lose the run's timer and step message the way an operator's mistake would (a dead or
  // cancelled step message would still advance the run: its final state publishes the advance).
  pqxx::nontransaction(*conn_).exec("DELETE FROM agent_messages WHERE correlation_id = 'wf:" +
                                    std::to_string(run) + "' AND status = 'queued'");
  pqxx::read_transaction txn(*conn_);
  const auto stuck = json::parse(workflow::StuckRunsJson(txn, std::nullopt, 0));
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0]["runId"], run);
}

std::map<std::string, std::string> As(const std::string& role, const std::string& tenant = "") {
  return {{"Authorization", "Bearer " + auth::MintDevToken(kTestJwtSecret, role, tenant)}};
}

// An intent whose rule names a workflow: the edge's request becomes a run (the payload its
// parameters), the request's status follows the run, the decision is recorded, a decide
// handled twice starts one run, and parameters the definition refuses fail the request by name.
TEST_F(WorkflowTest, AnEdgeIntentRoutedToAWorkflowStartsOneRunAndReportsIt) {
  const auto log = ScratchFile("wf-intent.log");
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const auto edge = std::make_unique<Daemon>("cogo-edge", std::vector<std::string>{"--routing", routing_}, log);
  auto headers = As("authenticated", "acme");
  headers["apikey"] = kTestPublishableKey;
  constexpr const char* kIngress = "/functions/v1/orchestrator-chat";

  const auto accepted = HttpPost(edge->port(), kIngress, R"({"tenant":"acme","intent":"three","payload":{}})", headers);
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  const std::string status_url = kIngress + std::string("/") + std::to_string(json::parse(accepted.body)["id"].get<int64_t>());
  json view;
  ASSERT_TRUE(WaitFor([&] {
    view = json::parse(HttpGet(edge->port(), status_url, headers).body);
    return view["status"] == "done";
  })) << view.dump() << " see " << log;
  const int64_t run = view["workflow"]["run_id"];
  EXPECT_EQ(view["workflow"]["workflow_id"], "threeSteps");
  EXPECT_EQ(view["workflow"]["status"], "succeeded");
  EXPECT_EQ(Status(run), "succeeded");
  EXPECT_EQ(ScalarText("SELECT tenant FROM workflow_runs WHERE id = " + std::to_string(run)), "acme");
  EXPECT_EQ(ScalarText("SELECT target || ' ' || agent_id || ' ' || version FROM decisions WHERE source = 'decide'"),
            "workflow/threeSteps threeSteps 1");

  // The same decide message handled again (a lost completion) finds its run.
  const int64_t decide = json::parse(accepted.body)["id"];
  pqxx::nontransaction(*conn_).exec0(
      "UPDATE agent_messages SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
      "finished_at = NULL, retry_at = NULL WHERE id = " + std::to_string(decide));
  ASSERT_TRUE(WaitFor([&] {
    return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(decide)) == "done";
  }));
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs"), 1);

  // fiveTypes needs {ok, hook}: the request fails with the definition's reason, no run starts.
  const auto bad = HttpPost(edge->port(), kIngress, R"({"tenant":"acme","intent":"five","payload":{"ok":"yes"}})", headers);
  ASSERT_EQ(bad.status, 202) << bad.body;
  const std::string bad_url = kIngress + std::string("/") + std::to_string(json::parse(bad.body)["id"].get<int64_t>());
  ASSERT_TRUE(WaitFor([&] {
    view = json::parse(HttpGet(edge->port(), bad_url, headers).body);
    return view["status"] == "failed";
  })) << view.dump();
  EXPECT_NE(view["error"].get<std::string>().find("wrong_type"), std::string::npos) << view.dump();
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs"), 1);

  // The REST execute path takes the same rule: one run per Idempotency-Key, the decision on it.
  auto service = As("service_role");
  service["Idempotency-Key"] = "run-once";
  const std::string body = R"({"tenant":"globex","intent":"three","payload":{}})";
  const auto first = HttpPost(brain->port(), "/api/orchestrator/execute", body, service);
  ASSERT_EQ(first.status, 202) << first.body;
  const auto second = HttpPost(brain->port(), "/api/orchestrator/execute", body, service);
  EXPECT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(json::parse(first.body)["runId"], json::parse(second.body)["runId"]);
  EXPECT_TRUE(Ends(json::parse(first.body)["runId"].get<int64_t>(), "succeeded")) << "see " << log;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM decisions WHERE source = 'api' AND target = 'workflow/threeSteps'"), 1);
  const auto refused = HttpPost(brain->port(), "/api/orchestrator/execute",
                                R"({"tenant":"globex","intent":"five","payload":{"ok":true}})", As("service_role"));
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"], "missing_key");
}

// The REST API as a user drives it: start, read, list, deliver an event, cancel; tenants see only
// their own runs; bad input is a 4xx with a reason and writes nothing.
TEST_F(WorkflowTest, TheRestApiStartsReadsSignalsAndCancelsRunsPerTenant) {
  const auto log = ScratchFile("wf-api.log");
  const auto brain = StartBrain(log);
  const auto worker = StartWorker("echo", "complete", log);
  const int port = brain->port();
  const auto acme = As("authenticated", "acme");
  const auto globex = As("authenticated", "globex");
  const auto service = As("service_role");

  auto started = HttpPost(port, "/api/workflows/execute",
                          R"({"workflowId":"fiveTypes","parameters":{"ok":true,"hook":"http://127.0.0.1:9/h"}})", acme);
  ASSERT_EQ(started.status, 202) << started.body;
  const int64_t run = json::parse(started.body)["runId"];
  EXPECT_EQ(json::parse(started.body)["version"], 1);
  // A service token names the tenant; an idempotent repeat returns the first run.
  const std::string by_service =
      R"({"workflowId":"timeout","tenant":"globex","parameters":{}})";
  auto other = HttpPost(port, "/api/workflows/execute", by_service, [&] {
    auto h = service;
    h["Idempotency-Key"] = "k1";
    return h;
  }());
  ASSERT_EQ(other.status, 202) << other.body;
  auto again = HttpPost(port, "/api/workflows/execute", by_service, [&] {
    auto h = service;
    h["Idempotency-Key"] = "k1";
    return h;
  }());
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(json::parse(again.body)["runId"], json::parse(other.body)["runId"]);
  const int64_t globex_run = json::parse(other.body)["runId"];

  const std::string path = "/api/workflows/runs/" + std::to_string(run);
  ASSERT_TRUE(WaitFor([&] { return json::parse(HttpGet(port, path, acme).body)["status"] == "waiting"; }))
      << "see " << log;
  EXPECT_EQ(HttpGet(port, path, globex).status, 404);
  EXPECT_EQ(HttpGet(port, "/api/workflows/runs/" + std::to_string(globex_run), acme).status, 404);
  EXPECT_EQ(HttpGet(port, path, service).status, 200);
  const auto listed = json::parse(HttpGet(port, "/api/workflows/runs", acme).body);
  ASSERT_EQ(listed["runs"].size(), 1u);
  EXPECT_EQ(listed["runs"][0]["runId"], run);
  EXPECT_EQ(json::parse(HttpGet(port, "/api/workflows/runs?tenant=globex", service).body)["runs"].size(), 1u);
  EXPECT_EQ(HttpGet(port, "/api/workflows/runs?tenant=globex", acme).status, 403);
  EXPECT_EQ(HttpGet(port, "/api/workflows/runs?status=sleeping", acme).status, 400);
  EXPECT_EQ(HttpGet(port, "/api/workflows/runs?limit=0", acme).status, 400);

  // Another tenant can neither signal nor cancel it.
  EXPECT_EQ(HttpPost(port, path + "/events", R"({"name":"approve","data":{}})", globex).status, 404);
  EXPECT_EQ(HttpPost(port, path + "/cancel", "{}", globex).status, 404);
  EXPECT_EQ(HttpPost(port, path + "/events", R"({"name":"approve","data":{"by":"ann"},"x":1})", acme).status, 400);
  auto signal = HttpPost(port, path + "/events", R"({"name":"nope","data":{}})", acme);
  EXPECT_EQ(signal.status, 202) << signal.body;
  auto cancel = HttpPost(port, path + "/cancel", R"({"reason":"changed my mind"})", acme);
  EXPECT_EQ(cancel.status, 200) << cancel.body;
  EXPECT_EQ(Status(run), "cancelled");
  const auto late = HttpPost(port, path + "/events", R"({"name":"approve","data":{}})", acme);
  EXPECT_EQ(late.status, 409);
  EXPECT_EQ(json::parse(late.body)["error"], "run_finished");
  EXPECT_EQ(HttpPost(port, path + "/cancel", "{}", acme).status, 409);

  const auto state = json::parse(HttpGet(port, "/api/orchestrator/state", service).body);
  EXPECT_EQ(state["workflows"]["runs"]["fiveTypes"]["cancelled"], 1);
  EXPECT_EQ(state["workflows"]["definitions"].size(), 5u);
  EXPECT_EQ(json::parse(HttpGet(port, "/api/workflows/definitions/flaky", acme).body)["version"], 1);
}

TEST_F(WorkflowTest, TheRestApiRefusesBadStartsWithAReasonAndWritesNothing) {
  const auto log = ScratchFile("wf-api-bad.log");
  const auto brain = StartBrain(log);
  const auto acme = As("authenticated", "acme");
  struct Case {
    const char* what;
    std::string body;
    std::map<std::string, std::string> headers;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"no token", R"({"workflowId":"timeout"})", {}, 401, ""},
      {"unknown workflow", R"({"workflowId":"nope","parameters":{}})", acme, 400, "unknown_workflow"},
      {"wrong parameter type", R"({"workflowId":"fiveTypes","parameters":{"ok":"yes","hook":"h"}})", acme, 400, "wrong_type"},
      {"missing parameter", R"({"workflowId":"fiveTypes","parameters":{"hook":"h"}})", acme, 400, "missing_key"},
      {"unknown parameter", R"({"workflowId":"timeout","parameters":{"x":1}})", acme, 400, "unknown_key"},
      {"parameters not an object", R"({"workflowId":"timeout","parameters":[1]})", acme, 400, "wrong_type"},
      {"unknown field", R"({"workflowId":"timeout","colour":1})", acme, 400, "unknown_field"},
      {"malformed", R"({"workflowId":)", acme, 400, "malformed_json"},
      {"another tenant", R"({"workflowId":"timeout","tenant":"globex"})", acme, 403, "tenant_mismatch"},
      {"service without tenant", R"({"workflowId":"timeout"})", As("service_role"), 400, "missing_key"},
      {"oversize", R"({"workflowId":"timeout","parameters":{},"pad":")" + std::string(5 << 20, 'x') + "\"}", acme, 413, ""},
  };
  for (const auto& c : cases) {
    const auto r = HttpPost(brain->port(), "/api/workflows/execute", c.body, c.headers);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body;
    if (!c.error.empty() && r.status == c.status) {
      EXPECT_EQ(json::parse(r.body)["error"], c.error) << c.what;
    }
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 0);
}

// The brain SIGKILLed at random moments while 200 runs of three steps advance: every run ends
// succeeded exactly once, each step message was published once and each step recorded once.
TEST_F(WorkflowTest, BrainKilledRepeatedlyUnderLoadLosesAndDoublesNothing) {
  constexpr int kRuns = 200;
  const auto log = ScratchFile("wf-kill.log");
  const auto worker = StartWorker("echo", "complete", log);
  WorkerDaemon reclaimer("cogo-bus-reclaimer", {"--interval", "200ms"}, log);
  std::vector<int64_t> runs;
  for (int i = 0; i < kRuns; ++i) runs.push_back(Start("threeSteps", json::object()));
  std::mt19937 rng(42);
  const auto advanced = [] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'workflow' AND status = 'done'");
  };
  for (int kill = 0; kill < 6; ++kill) {
    ChildProcess brain("cogo-orchestrator-brain",
                       {"--routing", routing_, "--policy",
                        SourcePath("config/policy.example.json"), "--workflows", dir_, "--poll-ms", "100",
                        "--lease-ms", "2000", "--heartbeat-ms", "500", "--port", "0"},
                       log);
    // Kill it mid-stream: once it is advancing runs, at a random moment.
    const int64_t before = advanced();
    (void)WaitFor([&] { return advanced() >= before + 20; }, 10s);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 150));
    brain.Signal(SIGKILL);
    (void)brain.Wait(10s);
  }
  EXPECT_LT(Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE status = 'succeeded'"), kRuns)
      << "the kills came too late to test anything";
  const auto brain = StartBrain(log);
  ASSERT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE status = 'succeeded'") == kRuns;
  }, 180s)) << Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE status = 'succeeded'") << " of " << kRuns
            << " succeeded; see " << log;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_runs WHERE status <> 'succeeded'"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'test'"), 3 * kRuns);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM (SELECT 1 FROM agent_messages WHERE service = 'test' "
                            "GROUP BY correlation_id, payload HAVING count(*) > 1) d"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM workflow_steps"), 7 * kRuns);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'workflow_done'"), kRuns);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'step_done'"), 3 * kRuns);
}

}  // namespace
}  // namespace cogo::testing
