// workflow::ParseDefinition's validation table and workflow::Transition's rules, one case per
// rule: a run is driven event by event, with the actions applied to an in-memory RunState the way
// the engine writes them to its tables.
#include <gtest/gtest.h>

#include "cogo/workflow/definition.h"
#include "cogo/workflow/transition.h"

namespace cogo::workflow {
namespace {

using nlohmann::json;

// All five node types: work -> wait (retry on failure) -> gate -> wait for approval -> notify.
constexpr const char* kFlow = R"({
  "_comment": "the five node types",
  "parameters": {"name": {"type": "string", "maxLength": 16}, "n": {"type": "integer", "required": false}},
  "limits": {"maxCostUsd": 1.0, "maxTokens": 1000},
  "start": "work",
  "nodes": {
    "work": {"type": "publish", "service": "test", "role": "echo",
             "payload": {"name": "${/parameters/name}", "label": "run ${/run/id}"},
             "assignment": {"agentId": "a", "version": "v1", "model": "m", "ttlMs": 60000,
                            "maxCostUsd": 0.25},
             "next": "waitWork"},
    "waitWork": {"type": "wait", "step": "work", "timeout": "1m", "next": "gate",
                 "onFail": "retryWork", "onTimeout": "slow"},
    "retryWork": {"type": "retry", "target": "work", "maxRetries": 2,
                  "backoff": {"baseMs": 100, "jitter": 0}, "onExhausted": "failed"},
    "gate": {"type": "gate", "assert": [{"path": "/steps/work/output/ok", "op": "==", "value": true},
                                        {"path": "/steps/work/output/score", "op": ">=", "value": 0.5}],
             "onPass": "approval", "onFail": "failed"},
    "approval": {"type": "wait", "event": "approve", "timeout": "1h", "lookback": "1m", "next": "hook"},
    "hook": {"type": "notify", "url": "http://127.0.0.1:9/hook", "body": {"run": "${/run/id}"},
             "next": "done"},
    "done": {"type": "end"},
    "failed": {"type": "end", "status": "failed", "reason": "work_failed"},
    "slow": {"type": "end", "status": "failed", "reason": "too_slow"}
  }
})";

constexpr int64_t kNow = 1'800'000'000'000;

Definition Parse(const std::string& text) {
  auto parsed = ParseDefinition("flow", text);
  if (const auto* e = std::get_if<DefinitionError>(&parsed)) ADD_FAILURE() << e->ToString();
  return std::get<Definition>(std::move(parsed));
}

template <typename T>
std::vector<T> Of(const TransitionResult& r) {
  std::vector<T> out;
  for (const auto& a : r.actions) {
    if (const auto* x = std::get_if<T>(&a)) out.push_back(*x);
  }
  return out;
}

std::vector<std::string> AuditNames(const TransitionResult& r) {
  std::vector<std::string> out;
  for (const auto& a : Of<Audit>(r)) out.push_back(a.event);
  return out;
}

// Applies actions as the engine does (step rows, cursor, run status, consumed signals).
void ApplyTo(RunState& run, const TransitionResult& r) {
  for (const auto& action : r.actions) {
    if (const auto* s = std::get_if<StartStep>(&action)) {
      run.steps[s->node] = StepState{s->activation, s->status, json(), "", kNow, s->reserved_usd, s->reserved_tokens};
      run.total_activations++;
      run.reserved_usd += s->reserved_usd;
      run.reserved_tokens += s->reserved_tokens;
    } else if (const auto* f = std::get_if<FinishStep>(&action)) {
      run.reserved_usd -= run.steps[f->node].reserved_usd;  // as the engine's reload: only running steps hold
      run.reserved_tokens -= run.steps[f->node].reserved_tokens;
      run.steps[f->node].reserved_usd = 0;
      run.steps[f->node].reserved_tokens = 0;
      run.steps[f->node].status = f->status;
      run.steps[f->node].output = f->output;
      run.steps[f->node].error = f->error;
    } else if (const auto* c = std::get_if<MoveCursor>(&action)) {
      run.cursor = c->node;
      run.cursor_activation = c->activation;
      run.status = c->status;
    } else if (const auto* e = std::get_if<FinishRun>(&action)) {
      run.status = e->status;
    } else if (const auto* g = std::get_if<ConsumeSignal>(&action)) {
      std::erase_if(run.signals, [&](const Signal& signal) { return signal.id == g->signal_id; });
    }
  }
}

class WorkflowRun : public ::testing::Test {
 protected:
  void SetUp() override {
    def_ = Parse(kFlow);
    run_.id = 7;
    run_.tenant = "acme";
    run_.status = "running";
    run_.parameters = {{"name", "x"}};
    run_.max_cost_usd = 1.0;
    run_.max_tokens = 1000;
  }
  TransitionResult Step(const Event& e) {
    auto r = Transition(def_, run_, e, kNow, 0.5);
    ApplyTo(run_, r);
    return r;
  }
  TransitionResult FinishWork(const std::string& status, json result, int activation = 1) {
    return Step(StepFinishedEvent{"work", activation, status, std::move(result), status == "done" ? "" : "boom"});
  }
  Definition def_;
  RunState run_;
};

TEST_F(WorkflowRun, StartPublishesTheFirstStepAndWaitsWithATimer) {
  const auto r = Step(StartEvent{});
  EXPECT_TRUE(r.ignored.empty());
  const auto starts = Of<StartStep>(r);
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[0].node, "work");
  EXPECT_EQ(starts[0].service, "test");
  EXPECT_EQ(starts[0].input["name"], "x");
  EXPECT_EQ(starts[0].input["label"], "run 7");
  // The node caps the step's budget below what the run has.
  EXPECT_DOUBLE_EQ(starts[0].input["__assignment"]["budget"]["maxCostUsd"].get<double>(), 0.25);
  EXPECT_EQ(starts[0].input["__assignment"]["budget"]["maxTokens"], 1000);
  EXPECT_EQ(starts[1].node, "waitWork");
  const auto timers = Of<ScheduleTimer>(r);
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_EQ(timers[0].delay, std::chrono::minutes(1));
  EXPECT_EQ(run_.cursor, "waitWork");
  EXPECT_EQ(run_.status, "running");
  EXPECT_EQ(AuditNames(r), (std::vector<std::string>{"workflow_started", "step_started", "workflow_waiting"}));
}

TEST_F(WorkflowRun, DuplicatesAndStaleEventsAreIgnored) {
  Step(StartEvent{});
  EXPECT_FALSE(Step(StartEvent{}).ignored.empty());
  EXPECT_FALSE(Step(StepFinishedEvent{"work", 2, "done", json::object(), ""}).ignored.empty());
  EXPECT_FALSE(Step(TimerEvent{"waitWork", 2, TimerPurpose::wait_timeout}).ignored.empty());
  EXPECT_FALSE(Step(TimerEvent{"retryWork", 1, TimerPurpose::retry_backoff}).ignored.empty());
  FinishWork("done", {{"ok", true}, {"score", 0.9}});
  // The same finish delivered twice: the step already succeeded.
  EXPECT_FALSE(FinishWork("done", {{"ok", true}}).ignored.empty());
  // The wait's timeout fires after the wait was satisfied.
  EXPECT_FALSE(Step(TimerEvent{"waitWork", 1, TimerPurpose::wait_timeout}).ignored.empty());
}

TEST_F(WorkflowRun, SuccessPathRecordsTheGateAndEndsSucceeded) {
  Step(StartEvent{});
  auto r = FinishWork("done", {{"ok", true}, {"score", 0.9}});
  EXPECT_EQ(AuditNames(r), (std::vector<std::string>{"step_done", "gate_passed", "workflow_waiting"}));
  // The satisfied wait's timer goes; the approval wait gets its own.
  ASSERT_EQ(Of<CancelTimer>(r).size(), 1u);
  EXPECT_EQ(Of<CancelTimer>(r)[0].node, "waitWork");
  EXPECT_EQ(Of<CancelTimer>(r)[0].activation, 1);
  ASSERT_EQ(Of<ScheduleTimer>(r).size(), 1u);
  EXPECT_EQ(Of<ScheduleTimer>(r)[0].node, "approval");
  EXPECT_EQ(run_.steps["gate"].output["verdict"], "pass");
  EXPECT_EQ(run_.steps["gate"].output["checks"][1]["actual"], 0.9);
  EXPECT_EQ(run_.cursor, "approval");
  EXPECT_EQ(run_.status, "waiting");
  run_.signals.push_back({41, "approve", {{"by", "ann"}}, kNow});
  r = Step(SignalEvent{41});
  EXPECT_EQ(Of<ConsumeSignal>(r).size(), 1u);
  ASSERT_EQ(Of<CancelTimer>(r).size(), 1u);
  EXPECT_EQ(Of<CancelTimer>(r)[0].node, "approval");
  EXPECT_EQ(run_.steps["approval"].output["by"], "ann");
  const auto starts = Of<StartStep>(r);
  ASSERT_EQ(starts.size(), 2u);  // the notify step and the end
  EXPECT_EQ(starts[0].service, "orchestrator");
  EXPECT_EQ(starts[0].role, "notify");
  EXPECT_EQ(starts[0].input["body"]["run"], 7);
  ASSERT_EQ(Of<FinishRun>(r).size(), 1u);
  EXPECT_EQ(Of<FinishRun>(r)[0].status, "succeeded");
  EXPECT_TRUE(Step(SignalEvent{41}).ignored.size() > 0);  // the run ended
}

TEST_F(WorkflowRun, GateFailureFollowsOnFailWithTheValuesItSaw) {
  Step(StartEvent{});
  const auto r = FinishWork("done", {{"ok", true}, {"score", 0.1}});
  EXPECT_EQ(run_.steps["gate"].output["verdict"], "fail");
  EXPECT_EQ(run_.steps["gate"].output["checks"][1]["ok"], false);
  ASSERT_EQ(Of<FinishRun>(r).size(), 1u);
  EXPECT_EQ(Of<FinishRun>(r)[0].status, "failed");
  EXPECT_EQ(Of<FinishRun>(r)[0].reason, "work_failed");
}

TEST_F(WorkflowRun, FailedStepIsRetriedAfterABackoffThenSucceeds) {
  Step(StartEvent{});
  auto r = FinishWork("dead", json());
  EXPECT_EQ(run_.cursor, "retryWork");
  ASSERT_EQ(Of<CancelTimer>(r).size(), 1u);  // the wait ended (on its step's failure)
  ASSERT_EQ(Of<ScheduleTimer>(r).size(), 1u);
  EXPECT_EQ(Of<ScheduleTimer>(r)[0].purpose, TimerPurpose::retry_backoff);
  EXPECT_EQ(Of<ScheduleTimer>(r)[0].delay, std::chrono::milliseconds(100));
  r = Step(TimerEvent{"retryWork", 1, TimerPurpose::retry_backoff});
  ASSERT_EQ(Of<StartStep>(r).size(), 2u);
  EXPECT_EQ(Of<StartStep>(r)[0].node, "work");
  EXPECT_EQ(Of<StartStep>(r)[0].activation, 2);
  EXPECT_EQ(run_.cursor, "waitWork");
  EXPECT_EQ(run_.cursor_activation, 2);
  FinishWork("done", {{"ok", true}, {"score", 1}}, 2);
  EXPECT_EQ(run_.cursor, "approval");
}

TEST_F(WorkflowRun, RetriesExhaustedFollowOnExhausted) {
  Step(StartEvent{});
  for (int activation = 1; activation <= 2; ++activation) {
    FinishWork("failed", json(), activation);
    const auto r = Step(TimerEvent{"retryWork", activation, TimerPurpose::retry_backoff});
    ASSERT_TRUE(r.ignored.empty()) << r.ignored;
  }
  const auto r = FinishWork("failed", json(), 3);
  EXPECT_EQ(AuditNames(r), (std::vector<std::string>{"step_failed", "retry_exhausted", "workflow_failed"}));
  EXPECT_EQ(run_.status, "failed");
}

TEST_F(WorkflowRun, WaitTimeoutFollowsOnTimeout) {
  Step(StartEvent{});
  const auto r = Step(TimerEvent{"waitWork", 1, TimerPurpose::wait_timeout});
  EXPECT_EQ(run_.steps["waitWork"].status, "timed_out");
  EXPECT_TRUE(Of<CancelTimer>(r).empty());  // the timer that fired is the one running
  ASSERT_EQ(Of<FinishRun>(r).size(), 1u);
  EXPECT_EQ(Of<FinishRun>(r)[0].reason, "too_slow");
  // The step finishing afterwards changes nothing.
  EXPECT_FALSE(FinishWork("done", {{"ok", true}}).ignored.empty());
}

TEST_F(WorkflowRun, AnEventShortlyBeforeTheWaitIsSeenAnOlderOneIsNot) {
  Step(StartEvent{});
  run_.signals.push_back({1, "approve", {{"by", "old"}}, kNow - 120'000});  // outside the 1m lookback
  run_.signals.push_back({2, "approve", {{"by", "early"}}, kNow - 30'000});
  EXPECT_FALSE(Step(SignalEvent{2}).ignored.empty());  // no wait open yet: it stays pending
  const auto r = FinishWork("done", {{"ok", true}, {"score", 1}});
  ASSERT_EQ(Of<ConsumeSignal>(r).size(), 1u);
  EXPECT_EQ(Of<ConsumeSignal>(r)[0].signal_id, 2);
  // Satisfied on entry, the approval wait never gets a timer (so none to cancel).
  EXPECT_TRUE(Of<ScheduleTimer>(r).empty());
  ASSERT_EQ(Of<CancelTimer>(r).size(), 1u);
  EXPECT_EQ(Of<CancelTimer>(r)[0].node, "waitWork");
  EXPECT_EQ(run_.status, "succeeded");
}

TEST_F(WorkflowRun, SpendReachingTheRunBudgetFailsItBudgetExhausted) {
  Step(StartEvent{});
  auto e = StepFinishedEvent{"work", 1, "failed", json(), "budget_exceeded: over", 1.0, 10};
  const auto r = Step(e);
  ASSERT_EQ(Of<FinishRun>(r).size(), 1u);
  EXPECT_EQ(Of<FinishRun>(r)[0].reason, "budget_exhausted");
}

// The indexing shape: a step's wait leads straight to the next publish in the same transition,
// which must get what the finished step was handed back (minus what it spent).
TEST(WorkflowBudget, AFinishedStepsReservationGoesToTheNextStep) {
  const auto def = Parse(R"({
    "limits": {"maxCostUsd": 1.0, "maxTokens": 1000},
    "start": "a",
    "nodes": {
      "a": {"type": "publish", "service": "s", "role": "a", "payload": {},
            "assignment": {"agentId": "x", "version": "v1", "model": "m", "ttlMs": 60000}, "next": "wa"},
      "wa": {"type": "wait", "step": "a", "timeout": "1m", "next": "b"},
      "b": {"type": "publish", "service": "s", "role": "b", "payload": {},
            "assignment": {"agentId": "x", "version": "v1", "model": "m", "ttlMs": 60000}, "next": "wb"},
      "wb": {"type": "wait", "step": "b", "timeout": "1m", "next": "done"},
      "done": {"type": "end"}
    }
  })");
  RunState run;
  run.id = 1;
  run.status = "running";
  run.max_cost_usd = 1.0;
  run.max_tokens = 1000;
  auto r = Transition(def, run, StartEvent{}, kNow, 0.5);
  ApplyTo(run, r);
  ASSERT_DOUBLE_EQ(Of<StartStep>(r)[0].reserved_usd, 1.0);
  run.spent_usd = 0;  // what the engine reloads: a's usage arrives with its finish below
  r = Transition(def, run, StepFinishedEvent{"a", 1, "done", json::object(), "", 0.25, 100}, kNow, 0.5);
  ApplyTo(run, r);
  ASSERT_TRUE(Of<FinishRun>(r).empty()) << "not budget_exhausted";
  const auto starts = Of<StartStep>(r);
  const auto b = std::find_if(starts.begin(), starts.end(), [](const StartStep& s) { return s.node == "b"; });
  ASSERT_NE(b, starts.end());
  EXPECT_DOUBLE_EQ(b->reserved_usd, 0.75);
  EXPECT_EQ(b->reserved_tokens, 900);
}

TEST_F(WorkflowRun, NothingLeftOfTheBudgetFailsBeforePublishing) {
  run_.spent_usd = 1.0;
  const auto r = Step(StartEvent{});
  EXPECT_TRUE(std::none_of(r.actions.begin(), r.actions.end(), [](const Action& a) {
    const auto* s = std::get_if<StartStep>(&a);
    return s != nullptr && !s->service.empty();
  }));
  EXPECT_EQ(Of<FinishRun>(r)[0].reason, "budget_exhausted");
}

TEST_F(WorkflowRun, AMissingTemplateValueFailsTheRunByName) {
  run_.parameters = json::object();
  const auto r = Step(StartEvent{});
  EXPECT_EQ(Of<FinishRun>(r)[0].reason, "template_error");
}

TEST(WorkflowTemplate, RendersWholeValuesAndText) {
  const json doc = {{"parameters", {{"n", 3}, {"s", "x"}, {"o", {{"k", true}}}}}};
  EXPECT_EQ(Render("${/parameters/n}", doc), 3);
  EXPECT_EQ(Render("${/parameters/o}", doc), (json{{"k", true}}));
  EXPECT_EQ(Render("n=${/parameters/n} s=${/parameters/s}", doc), "n=3 s=x");
  EXPECT_EQ(Render(json{{"a", {"${/parameters/s}", 1}}}, doc), (json{{"a", {"x", 1}}}));
  EXPECT_EQ(Render("plain $ {text}", doc), "plain $ {text}");
  EXPECT_THROW((void)Render("${/parameters/missing}", doc), std::invalid_argument);
}

TEST(WorkflowAssertion, ComparesByType) {
  const json doc = {{"v", 2}, {"s", "b"}, {"t", true}};
  struct Case {
    const char* path;
    CompareOp op;
    json value;
    bool ok;
  };
  const Case cases[] = {
      {"/v", CompareOp::eq, 2, true},          {"/v", CompareOp::ne, 2, false},
      {"/v", CompareOp::lt, 3, true},          {"/v", CompareOp::le, 2, true},
      {"/v", CompareOp::gt, 2, false},         {"/v", CompareOp::ge, 1.5, true},
      {"/s", CompareOp::lt, "c", true},        {"/s", CompareOp::gt, 1, false},
      {"/t", CompareOp::eq, true, true},       {"/missing", CompareOp::exists, json(), false},
      {"/t", CompareOp::exists, json(), true}, {"/s", CompareOp::in, json{"a", "b"}, true},
      {"/v", CompareOp::in, json{"2"}, false}, {"/missing", CompareOp::eq, json(), true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Evaluate({c.path, c.op, c.value}, doc).ok, c.ok) << c.path << " " << c.value;
  }
}

TEST(WorkflowDefinition, RefusesEachMistakeWithItsPath) {
  const json base = json::parse(kFlow);
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    std::string path;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"unknown key", [](json& d) { d["nodes"]["work"]["colour"] = 1; }, "nodes.work.colour", "unknown_key"},
      {"undefined node", [](json& d) { d["nodes"]["gate"]["onPass"] = "nowhere"; }, "nodes.gate.onPass", "undefined_node"},
      {"undefined start", [](json& d) { d["start"] = "nowhere"; }, "start", "undefined_node"},
      {"unreachable", [](json& d) { d["nodes"]["orphan"] = {{"type", "end"}}; }, "nodes.orphan", "unreachable_node"},
      {"wait without timeout", [](json& d) { d["nodes"]["approval"].erase("timeout"); }, "nodes.approval.timeout", "missing_key"},
      {"bad duration", [](json& d) { d["nodes"]["approval"]["timeout"] = "soon"; }, "nodes.approval.timeout", "invalid_value"},
      {"wait on a gate", [](json& d) { d["nodes"]["waitWork"]["step"] = "gate"; }, "nodes.waitWork.step", "invalid_value"},
      {"unbounded cycle", [](json& d) { d["nodes"]["gate"]["onFail"] = "work"; }, "nodes.gate.onFail", "unbounded_cycle"},
      {"bad type", [](json& d) { d["nodes"]["work"]["type"] = "script"; }, "nodes.work.type", "invalid_value"},
      {"bad op", [](json& d) { d["nodes"]["gate"]["assert"][0]["op"] = "~="; }, "nodes.gate.assert[0].op", "invalid_value"},
      {"two wait kinds", [](json& d) { d["nodes"]["approval"]["step"] = "work"; }, "nodes.approval", "invalid_value"},
      {"no budget", [](json& d) { d.erase("limits"); d["nodes"]["work"]["assignment"].erase("maxCostUsd"); },
       "nodes.work.assignment.maxCostUsd", "missing_key"},
      {"bad parameter type", [](json& d) { d["parameters"]["name"]["type"] = "date"; }, "parameters.name.type", "invalid_value"},
      {"bad access", [](json& d) { d["access"] = "admin"; }, "access", "invalid_value"},
      // A slash would make the route's wake-ups unreadable (bus::ValidRouteName).
      {"slash in service", [](json& d) { d["nodes"]["work"]["service"] = "te/st"; }, "nodes.work.service", "invalid_name"},
      {"slash in role", [](json& d) { d["nodes"]["work"]["role"] = "echo/2"; }, "nodes.work.role", "invalid_name"},
  };
  for (const auto& c : cases) {
    json d = base;
    c.edit(d);
    auto parsed = ParseDefinition("flow", d.dump());
    const auto* e = std::get_if<DefinitionError>(&parsed);
    ASSERT_NE(e, nullptr) << c.what;
    EXPECT_EQ(e->path, c.path) << c.what << ": " << e->ToString();
    EXPECT_EQ(e->reason, c.reason) << c.what << ": " << e->ToString();
  }
  auto duplicate = ParseDefinition("flow", R"({"start":"a","start":"a","nodes":{"a":{"type":"end"}}})");
  ASSERT_TRUE(std::holds_alternative<DefinitionError>(duplicate));
  EXPECT_EQ(std::get<DefinitionError>(duplicate).reason, "duplicate_key");
}

TEST(WorkflowDefinition, ChecksParametersAndAddressesContent) {
  const Definition d = Parse(kFlow);
  EXPECT_FALSE(CheckParameters(d, {{"name", "x"}, {"n", 2}}).has_value());
  EXPECT_EQ(CheckParameters(d, {{"n", 2}})->reason, "missing_key");
  EXPECT_EQ(CheckParameters(d, {{"name", 1}})->reason, "wrong_type");
  EXPECT_EQ(CheckParameters(d, {{"name", "x"}, {"n", 1.5}})->path, "parameters.n");
  EXPECT_EQ(CheckParameters(d, {{"name", "x"}, {"extra", 1}})->reason, "unknown_key");
  EXPECT_EQ(CheckParameters(d, {{"name", std::string(17, 'x')}})->reason, "out_of_range");
  EXPECT_EQ(CheckParameters(d, json::array())->reason, "wrong_type");
  // Who may act on runs: any token unless the definition says service_role.
  EXPECT_FALSE(d.service_role_only);
  json operators = json::parse(kFlow);
  operators["access"] = "service_role";
  EXPECT_TRUE(Parse(operators.dump()).service_role_only);
  // The digest follows the content, not the formatting.
  EXPECT_EQ(Parse(json::parse(kFlow).dump(2)).digest, d.digest);
  EXPECT_NE(Parse(json::parse(kFlow).dump()).digest, std::get<Definition>(ParseDefinition("other", kFlow)).digest);
}

TEST(WorkflowDefinition, TheShippedDefinitionsLoad) {
  const auto all = LoadDefinitions(std::string(COGO_SOURCE_DIR) + "/config/workflows");
  EXPECT_TRUE(all.count("indexing"));
  EXPECT_TRUE(all.count("codeBuildTest"));
  EXPECT_TRUE(all.count("upgrade"));
  EXPECT_TRUE(all.at("upgrade").service_role_only);  // it steers agent versions for every tenant
  EXPECT_FALSE(all.at("indexing").service_role_only);
}

}  // namespace
}  // namespace cogo::workflow
