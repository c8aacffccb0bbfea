// The worker runtime's guards and hand-offs against a real PostgreSQL: every `__assignment`
// violation fails once, permanently, with its reason and a policy_violation event; a handler
// past its deadline or over budget is stopped; usage is recorded; follow-up publishes commit
// with the completion and put the child's lifecycle on the parent's trail.
#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>

#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;
using runtime::HandlerContext;
using runtime::HandlerResult;

std::string Assignment(const std::string& model, int64_t ttl_ms, int64_t max_tokens = 1000,
                       double max_cost = 1.0) {
  return nlohmann::json{{"__assignment",
                         {{"agent_id", "agent-1"},
                          {"version", "v1"},
                          {"model", model},
                          {"budget", {{"maxCostUsd", max_cost}, {"maxTokens", max_tokens}}},
                          {"ttl_ms", ttl_ms}}},
                        {"input", "hi"}}
      .dump();
}

class GuardTest : public BusTest {
 protected:
  runtime::WorkerOptions Options() {
    runtime::WorkerOptions o;
    o.database_url = DatabaseUrl();
    o.service = "test";
    o.role = "echo";
    o.poll = 50ms;
    o.heartbeat = 100ms;
    o.guards.served_models = {"small-model"};
    return o;
  }
  void RunUntilSettled(runtime::Worker& worker) {
    worker.Start();
    ASSERT_TRUE(WaitFor([] {
      return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')") == 0;
    }, 20s));
    worker.Drain();
  }
  std::string Error(int64_t id) {
    return ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(id));
  }
  std::shared_ptr<spdlog::logger> logger_ = log::Get("guard-test");
};

TEST_F(GuardTest, ViolationsFailOnceWithTheirReasonAndNeverRun) {
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         nullptr, logger_);
  const auto ids = bus_->PublishBatch({
      Message(Assignment("big-model", 60000)),                      // model_not_served
      Message(R"({"__assignment":{"agent_id":"a","version":"v1"}})"),  // assignment_invalid
      Message(Assignment("small-model", 1)),                        // ttl_exceeded before start
  });
  std::this_thread::sleep_for(20ms);
  RunUntilSettled(worker);
  EXPECT_EQ(calls.load(), 0);
  const char* reasons[] = {"model_not_served", "assignment_invalid", "ttl_exceeded"};
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(Error(ids[i].id).rfind(reasons[i], 0), 0u) << Error(ids[i].id);
    EXPECT_EQ(Trail(ids[i].id), "claimed policy_violation failed") << reasons[i];
    EXPECT_EQ(ScalarText("SELECT detail->>'reason' FROM bus_events WHERE event = 'policy_violation' "
                         "AND message_id = " + std::to_string(ids[i].id)),
              reasons[i]);
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'failed' AND attempts = 1"), 3);
}

TEST_F(GuardTest, RequiredAssignmentMissing) {
  auto options = Options();
  options.guards.require_assignment = true;
  runtime::Worker worker(options, [](HandlerContext&) { return HandlerResult::Complete(); }, nullptr, logger_);
  const auto id = bus_->Publish(Message(R"({"no":"assignment"})")).id;
  RunUntilSettled(worker);
  EXPECT_EQ(Error(id).rfind("assignment_missing", 0), 0u) << Error(id);
}

// The TTL is a minute; the test moves the worker's clock past it instead of waiting.
TEST_F(GuardTest, HandlerPastItsDeadlineIsStoppedAndFailsTtlExceeded) {
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> saw_deadline{false};
  base::ManualClock clock;
  auto options = Options();
  options.clock = &clock;
  runtime::Worker worker(options, [&](HandlerContext& c) {
    saw_deadline = c.deadline.has_value() && c.assignment != nullptr && c.assignment->model == "small-model";
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (!c.stop.stop_requested() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(5ms);
    }
    saw_stop = c.stop.stop_requested();
    return HandlerResult::Complete();
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message(Assignment("small-model", 60000))).id;
  const auto started = std::chrono::steady_clock::now();
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return saw_deadline.load(); }));
  clock.Advance(59s);
  std::this_thread::sleep_for(300ms);  // three watchdog passes (one per heartbeat): not yet
  EXPECT_FALSE(saw_stop.load());
  clock.Advance(2s);
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')") == 0;
  }, 20s));
  worker.Drain();
  EXPECT_TRUE(saw_stop.load()) << "the watchdog requested the stop";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
  EXPECT_EQ(Error(id).rfind("ttl_exceeded", 0), 0u) << Error(id);
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages"), "failed");
}

// The deadline is the one the bus stored at publish (sql/018's ttl_deadline, made by the one TTL
// rule), never created_at + ttl_ms worked out again by the worker: a message whose stored
// deadline passed fails ttl_exceeded although its ttl_ms has a minute left, and one whose stored
// deadline is an hour away runs with that deadline although its ttl_ms ran out.
TEST_F(GuardTest, TheWorkerJudgesTheDeadlineTheBusStored) {
  std::atomic<int> calls{0};
  std::atomic<int64_t> seconds_left{0};
  runtime::Worker worker(Options(), [&](HandlerContext& c) {
    ++calls;
    if (c.deadline) {
      seconds_left = std::chrono::duration_cast<std::chrono::seconds>(*c.deadline - std::chrono::steady_clock::now()).count();
    }
    return HandlerResult::Complete();
  }, nullptr, logger_);
  const auto ids = bus_->PublishBatch({Message(Assignment("small-model", 60000)), Message(Assignment("small-model", 1))});
  pqxx::nontransaction(*conn_).exec("UPDATE agent_messages SET ttl_deadline = CASE id WHEN " + std::to_string(ids[0].id) +
                                    " THEN now() - interval '1 second' ELSE now() + interval '1 hour' END");
  std::this_thread::sleep_for(20ms);  // the second one's ttl_ms is over
  RunUntilSettled(worker);
  EXPECT_EQ(Error(ids[0].id).rfind("ttl_exceeded", 0), 0u) << Error(ids[0].id);
  EXPECT_EQ(Trail(ids[0].id), "claimed policy_violation failed");
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(ids[1].id)), "done");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_GT(seconds_left.load(), 3500);
  EXPECT_LE(seconds_left.load(), 3600);
}

TEST_F(GuardTest, OverspendingHandlerIsStoppedAndItsUsageRecorded) {
  std::atomic<int> reports{0};
  runtime::Worker worker(Options(), [&](HandlerContext& c) {
    while (!c.stop.stop_requested() && reports < 1000) {
      (void)c.usage.Report({40, 60, 0.001});
      ++reports;
    }
    return HandlerResult::Complete(R"({"reply":"too long"})");
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message(Assignment("small-model", 60000, 1000, 5.0))).id;
  RunUntilSettled(worker);
  EXPECT_EQ(reports.load(), 11) << "stopped at the report that crossed 1000 tokens";
  EXPECT_EQ(Error(id).rfind("budget_exceeded", 0), 0u) << Error(id);
  EXPECT_EQ(Trail(id), "claimed policy_violation failed");
  EXPECT_EQ(ScalarText("SELECT input_tokens || '/' || output_tokens || '/' || agent_id || '/' || model "
                       "|| '/' || outcome FROM message_usage WHERE message_id = " + std::to_string(id)),
            "440/660/agent-1/small-model/budget_exceeded");
}

TEST_F(GuardTest, UsageWithinBudgetIsRecordedWithTheCompletion) {
  runtime::Worker worker(Options(), [&](HandlerContext& c) {
    EXPECT_EQ(c.usage.Report({100, 50, 0.002}), policy::MeterVerdict::within);
    return HandlerResult::Complete(R"({"reply":"ok"})", "ok");
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message(Assignment("small-model", 60000))).id;
  RunUntilSettled(worker);
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages"), "done");
  EXPECT_EQ(ScalarText("SELECT input_tokens + output_tokens || ' ' || cost_usd::float8 || ' ' || outcome "
                       "FROM message_usage WHERE message_id = " + std::to_string(id)),
            "150 0.002 completed");
}

TEST_F(GuardTest, FollowUpsCommitWithTheCompletionAndReportToTheParent) {
  runtime::WorkerOptions execute = Options();
  execute.role = "execute";
  execute.guards.served_models.clear();
  runtime::Worker dispatcher(execute, [](HandlerContext& c) {
    HandlerResult r = HandlerResult::Complete();
    auto child = Message(c.message.payload_json, "test", "echo");
    child.correlation_id = "req-1";
    r.publish.push_back(child);
    r.events.push_back({0, "decision", R"({"why":"test"})"});
    return r;
  }, nullptr, logger_);
  runtime::Worker target(Options(), [](HandlerContext&) { return HandlerResult::Complete(R"({"ok":1})"); },
                         nullptr, logger_);
  const auto parent = bus_->Publish(Message(Assignment("small-model", 60000), "test", "execute")).id;
  dispatcher.Start();
  target.Start();
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'") == 2;
  }, 20s));
  dispatcher.Drain();
  target.Drain();
  const auto child = Scalar<int64_t>("SELECT id FROM agent_messages WHERE parent_id = " + std::to_string(parent));
  EXPECT_EQ(Trail(parent), "claimed decision execute_enqueued completed execute_done");
  EXPECT_EQ(Trail(child), "claimed completed");
  EXPECT_EQ(ScalarText("SELECT correlation_id FROM agent_messages WHERE id = " + std::to_string(child)), "req-1");
}

TEST_F(GuardTest, InvalidFollowUpFailsTheMessageAndPublishesNothing) {
  runtime::WorkerOptions o = Options();
  o.guards.served_models.clear();
  runtime::Worker worker(o, [](HandlerContext&) {
    HandlerResult r = HandlerResult::Complete();
    r.publish.push_back(Message("{broken", "next", "step"));
    return r;
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message()).id;
  RunUntilSettled(worker);
  EXPECT_EQ(Error(id).rfind("invalid_follow_up: invalid_json", 0), 0u) << Error(id);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'next'"), 0);
}

TEST_F(GuardTest, LostLeaseLeavesNoFollowUpsEventsOrUsage) {
  runtime::WorkerOptions o = Options();
  o.guards.served_models.clear();
  std::atomic<bool> go{false};
  runtime::Worker worker(o, [&](HandlerContext& c) {
    while (!go) std::this_thread::sleep_for(5ms);
    (void)c.usage.Report({1, 1, 0.0});
    HandlerResult r = HandlerResult::Complete();
    r.publish.push_back(Message("{}", "next", "step"));
    r.events.push_back({0, "decision", ""});
    return r;
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message()).id;
  worker.Start();
  ASSERT_TRUE(WaitFor([] { return ScalarText("SELECT status FROM agent_messages") == "running"; }));
  ASSERT_TRUE(bus_->Cancel(id, "operator"));
  go = true;
  ASSERT_TRUE(WaitFor([&] { return worker.stats().lease_lost == 1; }));
  worker.Drain();
  EXPECT_EQ(Trail(id), "claimed cancelled");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'next'"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM message_usage"), 0);
}

// Usage alone takes no lease lock: it is recorded after the statement that ends its attempt, and
// only when that statement found the lease holding, for a completion and a failure alike.
TEST_F(GuardTest, UsageAloneIsRecordedOnlyForTheAttemptWhoseLeaseHeld) {
  struct Case {
    const char* name;
    HandlerResult (*result)();
  };
  const Case cases[] = {
      {"completed", [] { return HandlerResult::Complete(R"({"reply":"ok"})", "ok"); }},
      {"failed", [] { return HandlerResult::Fail("upstream_refused", "the provider said no"); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    runtime::WorkerOptions o = Options();
    o.guards.served_models.clear();
    std::atomic<bool> go{false};
    std::atomic<int> runs{0};
    runtime::Worker worker(o, [&](HandlerContext& ctx) {
      ++runs;
      while (!go) std::this_thread::sleep_for(5ms);
      (void)ctx.usage.Report({3, 4, 0.001});
      return c.result();
    }, nullptr, logger_);
    const auto status = [](int64_t id) {
      return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id));
    };
    const auto lost = bus_->Publish(Message()).id;
    worker.Start();
    ASSERT_TRUE(WaitFor([&] { return status(lost) == "running"; }));
    ASSERT_TRUE(bus_->Cancel(lost, "operator"));
    go = true;
    ASSERT_TRUE(WaitFor([&] { return worker.stats().lease_lost == 1; }));
    const auto held = bus_->Publish(Message()).id;
    ASSERT_TRUE(WaitFor([&] { return status(held) == "done" || status(held) == "failed" || status(held) == "dead"; }));
    worker.Drain();
    EXPECT_EQ(runs.load(), 2);
    EXPECT_EQ(Trail(lost), "claimed cancelled");
    EXPECT_EQ(ScalarText("SELECT string_agg(message_id::text || ' ' || (input_tokens + output_tokens), ',') "
                         "FROM message_usage WHERE message_id IN (" + std::to_string(lost) + ", " + std::to_string(held) + ")"),
              std::to_string(held) + " 7");
  }
}

}  // namespace
}  // namespace cogo::testing
