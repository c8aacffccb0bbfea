// The executor against a real PostgreSQL: admitted work is handed off once and its outcome lands
// on the execute message's trail; refusals fail once with their reason; a target handler that
// overspends is stopped; a transient failure follows the rule's backoff to a dead letter; the
// tenant cap counts spend and work in flight, per UTC day; several executor processes hand off
// exactly once.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "child_process.h"
#include "cogo/db/connection.h"
#include "cogo/executor/dispatcher.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "front_support.h"
#include "log_sink.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using runtime::HandlerContext;
using runtime::HandlerResult;

constexpr const char* kPolicy = R"({
  "default": {
    "allowed_models": ["offline-deterministic"], "allowed_versions": ["1.0.0"],
    "max_cost_usd": 1.0, "max_tokens": 10000, "default_ttl_ms": 60000, "max_ttl_ms": 600000,
    "max_attempts": 3, "backoff": {"base_ms": 50, "cap_ms": 400, "multiplier": 2.0, "jitter": 0.0}},
  "routes": {"gateway/chat": {"max_attempts": 2}},
  "prices": {"offline-deterministic": {"usd_per_1k_input": 0, "usd_per_1k_output": 0}},
  "tenants": {"default_daily_cap_usd": 10.0, "daily_cap_usd": {"capped": 1.0}}
})";

std::shared_ptr<const policy::PolicyTable> Policy() {
  auto r = policy::ParsePolicyTable(kPolicy);
  if (!r.ok()) throw std::runtime_error(r.error().ToString());
  return std::make_shared<const policy::PolicyTable>(std::move(r).table());
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json Payload(const std::function<void(json&)>& edit = {}) {
  json a = {{"agent_id", "agent-x"}, {"version", "1.0.0"}, {"model", "offline-deterministic"},
            {"budget", {{"maxCostUsd", 0.5}, {"maxTokens", 1000}}}, {"ttl_ms", 60000},
            {"issued_at", NowMs()}, {"target", {{"service", "gateway"}, {"role", "chat"}}}};
  if (edit) edit(a);
  return {{"__assignment", a}, {"intent", "chat"}, {"input", {{"q", "hi"}}}};
}

bus::PublishRequest Execute(const json& payload, const std::string& tenant = "tenant-a") {
  bus::PublishRequest r = Message(payload.dump(), executor::kService, executor::kRole);
  r.tenant = tenant;
  r.correlation_id = "req-1";
  r.max_attempts = 3;
  return r;
}

std::string Status(int64_t id) {
  return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id));
}

bool Final(int64_t id) {
  const auto s = Status(id);
  return s != "queued" && s != "running";
}

int64_t Children(int64_t id) {
  return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE parent_id = " + std::to_string(id));
}

int64_t ChildOf(int64_t id) {
  return Scalar<int64_t>("SELECT id FROM agent_messages WHERE parent_id = " + std::to_string(id));
}

class ExecutorTest : public BusTest {
 protected:
  std::shared_ptr<spdlog::logger> logger_ = log::Get("test");

  runtime::WorkerOptions Base() const {
    runtime::WorkerOptions o;
    o.database_url = DatabaseUrl();
    o.concurrency = 2;
    o.batch_size = 8;
    o.poll = 50ms;
    o.heartbeat = 200ms;
    o.drain_grace = 5s;
    return o;
  }

  std::unique_ptr<runtime::Worker> StartExecutor() {
    runtime::WorkerOptions o = Base();
    executor::ConfigureExecutorWorker(o);
    auto w = std::make_unique<runtime::Worker>(
        o, executor::MakeExecutorHandler({DatabaseUrl(), Policy()}, logger_), nullptr, logger_);
    w->Start();
    return w;
  }

  // A worker on gateway/chat with the runtime's guards on (it serves the offline model).
  std::unique_ptr<runtime::Worker> StartTarget(runtime::Handler handler) {
    runtime::WorkerOptions o = Base();
    o.service = "gateway";
    o.role = "chat";
    o.guards.served_models = {"offline-deterministic"};
    auto w = std::make_unique<runtime::Worker>(o, std::move(handler), nullptr, logger_);
    w->Start();
    return w;
  }
};

TEST_F(ExecutorTest, WithinBudgetHandsOffOnceAndTheTrailShowsTheWholeRequest) {
  const auto id = bus_->Publish(Execute(Payload())).id;
  auto executor = StartExecutor();
  auto target = StartTarget([](HandlerContext& ctx) {
    (void)ctx.usage.Report({120, 30, 0.0});
    return HandlerResult::Complete(R"({"answer":"hello"})", "answered");
  });
  ASSERT_TRUE(WaitFor([&] { return Trail(id).find("execute_done") != std::string::npos; }, 20s))
      << Trail(id);
  EXPECT_EQ(Trail(id), "claimed execute_enqueued completed execute_done");
  EXPECT_EQ(Children(id), 1);
  const int64_t child = ChildOf(id);
  EXPECT_EQ(Trail(child), "claimed completed");
  EXPECT_TRUE(Scalar<bool>(
      "SELECT c.payload = p.payload AND c.tenant = p.tenant AND c.shard = p.shard "
      "AND c.correlation_id = 'req-1' AND c.service = 'gateway' AND c.role = 'chat' "
      "AND c.max_attempts = 2 AND c.idempotency_key = 'execute:' || p.id "
      "FROM agent_messages c JOIN agent_messages p ON p.id = c.parent_id"));
  EXPECT_EQ(ScalarText("SELECT result->>'rule' FROM agent_messages WHERE id = " + std::to_string(id)),
            "route:gateway/chat");
  EXPECT_EQ(ScalarText("SELECT outcome || ' ' || input_tokens || ' ' || output_tokens || ' ' || agent_id "
                       "FROM message_usage WHERE message_id = " + std::to_string(child)),
            "completed 120 30 agent-x");
  target->Drain();
  executor->Drain();
}

TEST_F(ExecutorTest, PolicyViolationsFailOnceWithTheirReasonAndAreNeverRetried) {
  // The capped tenant (1.00 USD a day) already spent 0.80 today.
  pqxx::nontransaction(*conn_).exec(
      "INSERT INTO message_usage (message_id, attempt, tenant, service, role, cost_usd, outcome) "
      "VALUES (999999, 1, 'capped', 'gateway', 'chat', 0.8, 'completed')");
  struct Case {
    const char* reason;
    std::function<void(json&)> edit;
    std::string tenant = "tenant-a";
  };
  const std::vector<Case> cases = {
      {"budget_over_cap", [](json& a) { a["budget"]["maxCostUsd"] = 5.0; }},
      {"ttl_expired", [](json& a) { a["issued_at"] = NowMs() - 120000; }},
      {"model_not_allowed", [](json& a) { a["model"] = "gpt-4o"; }},
      {"version_not_allowed", [](json& a) { a["version"] = "9.9.9"; }},
      {"tenant_budget_exhausted", [](json&) {}, "capped"},
      {"assignment_invalid", [](json& a) { a.erase("target"); }},
  };
  std::vector<int64_t> ids;
  for (const auto& c : cases) ids.push_back(bus_->Publish(Execute(Payload(c.edit), c.tenant)).id);
  auto executor = StartExecutor();
  ASSERT_TRUE(WaitFor([&] {
    return std::all_of(ids.begin(), ids.end(), [](int64_t id) { return Final(id); });
  }, 20s));
  std::this_thread::sleep_for(300ms);  // time for a wrongful retry to show
  executor->Drain();
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].reason);
    const auto id = std::to_string(ids[i]);
    EXPECT_EQ(Status(ids[i]), "failed");
    EXPECT_EQ(Scalar<int>("SELECT attempts FROM agent_messages WHERE id = " + id), 1);
    EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " + id),
              cases[i].reason);
    EXPECT_EQ(Trail(ids[i]), "claimed policy_violation execute_failed failed");
    EXPECT_EQ(ScalarText("SELECT detail->>'reason' FROM bus_events WHERE event = 'execute_failed' "
                         "AND message_id = " + id),
              cases[i].reason);
    EXPECT_EQ(Children(ids[i]), 0);
  }
}

// The admission judges the deadline the bus stored at publish (the one TTL rule, in the
// database), not created_at/issued_at + ttl_ms worked out again: a message whose stored deadline
// passed is refused with a minute of ttl_ms left, and one whose issued_at is long past is handed
// off while its stored deadline is an hour away.
TEST_F(ExecutorTest, TheAdmissionJudgesTheDeadlineTheBusStored) {
  const int64_t passed = bus_->Publish(Execute(Payload())).id;
  const int64_t later = bus_->Publish(Execute(Payload([](json& a) { a["issued_at"] = NowMs() - 120000; }))).id;
  pqxx::nontransaction(*conn_).exec("UPDATE agent_messages SET ttl_deadline = CASE id WHEN " + std::to_string(passed) +
                                    " THEN now() - interval '1 second' ELSE now() + interval '1 hour' END");
  auto executor = StartExecutor();
  ASSERT_TRUE(WaitFor([&] { return Final(passed) && Final(later); }, 20s));
  executor->Drain();
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " + std::to_string(passed)),
            "ttl_expired");
  EXPECT_EQ(Children(passed), 0);
  EXPECT_EQ(Status(later), "done");
  EXPECT_EQ(Children(later), 1);
}

TEST_F(ExecutorTest, TenantCapCountsWorkHandedOffButNotFinished) {
  auto executor = StartExecutor();  // no target worker: hand-offs stay queued
  auto budget = [](double usd) { return [usd](json& a) { a["budget"]["maxCostUsd"] = usd; }; };
  const auto first = bus_->Publish(Execute(Payload(budget(0.6)), "capped")).id;
  ASSERT_TRUE(WaitFor([&] { return Final(first); }));
  EXPECT_EQ(Status(first), "done");
  const auto second = bus_->Publish(Execute(Payload(budget(0.6)), "capped")).id;
  ASSERT_TRUE(WaitFor([&] { return Final(second); }));
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " +
                       std::to_string(second)),
            "tenant_budget_exhausted");
  const auto third = bus_->Publish(Execute(Payload(budget(0.4)), "capped")).id;  // 0.6 + 0.4 = cap
  ASSERT_TRUE(WaitFor([&] { return Final(third); }));
  EXPECT_EQ(Status(third), "done");
  executor->Drain();
}

// Many executors admitting for one tenant at the same instant: each admission reserves against
// the tenant's running total in the transaction that commits its hand-off, judging the total the
// previous one committed, so together they stop exactly at the cap. (Read and hand-off in
// separate transactions let every handler thread pass on the same reading: 32 threads admitted
// far more than the cap allows.)
TEST_F(ExecutorTest, ConcurrentExecutorsTogetherNeverPassTheTenantCap) {
  constexpr int kExecutors = 4;
  constexpr int kMessages = 80;
  constexpr double kCall = 0.1;  // the capped tenant's cap is 1.00: room for exactly 10 calls
  std::vector<std::unique_ptr<runtime::Worker>> executors;
  for (int i = 0; i < kExecutors; ++i) {
    runtime::WorkerOptions o = Base();
    executor::ConfigureExecutorWorker(o);
    o.concurrency = 8;
    o.batch_size = 8;
    executors.push_back(std::make_unique<runtime::Worker>(
        o, executor::MakeExecutorHandler({DatabaseUrl(), Policy()}, logger_), nullptr, logger_));
  }
  // Published before the executors start, so their first claims all find work at once.
  const auto request = Execute(Payload([=](json& a) { a["budget"]["maxCostUsd"] = kCall; }), "capped");
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(kMessages, request));
  for (auto& e : executors) e->Start();
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' "
                           "AND status IN ('queued', 'running')") == 0;
  }, 60s));
  for (auto& e : executors) e->Drain();
  EXPECT_GT(std::count_if(executors.begin(), executors.end(), [](const auto& e) { return e->stats().claimed > 0; }), 1)
      << "more than one executor took part";
  const double handed_off = Scalar<double>(
      "SELECT coalesce(sum((payload->'__assignment'->'budget'->>'maxCostUsd')::numeric), 0)::float8 "
      "FROM agent_messages WHERE role = 'chat'");
  EXPECT_LE(handed_off, 1.0 + kCall) << "the cap may be passed by one call at most";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat'"), 10)
      << "every call that fits under the cap is admitted, and no more";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' AND status = 'failed' "
                            "AND last_error LIKE 'tenant_budget_exhausted:%'"),
            kMessages - 10);
  EXPECT_EQ(ScalarText("SELECT spent_usd::float8 || ' ' || reserved_usd::float8 FROM tenant_spend "
                       "WHERE tenant = 'capped'"),
            "0 1") << "the running total holds what was handed off, once";
}

// After a run of grouped admissions over tenant-a, tenant-b and capped: fewer admission
// transactions than hand-offs (rows one transaction wrote share its xmin), each tenant's running
// total as expected (capped reserved `capped`), and a recount from the rows agrees with it.
void ExpectGroupedAdmissionsAndTotals(pqxx::connection& conn, const std::string& capped,
                                      const std::string& reserved_a, const std::string& reserved_b) {
  EXPECT_LT(Scalar<int64_t>("SELECT count(DISTINCT xmin::text) FROM agent_messages WHERE role = 'chat'"),
            Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat'"))
      << "no two admissions shared a transaction";
  const std::string totals = "SELECT string_agg(tenant || ' ' || spent_usd::float8 || ' ' || reserved_usd::float8, "
                             "', ' ORDER BY tenant) FROM tenant_spend";
  const std::string before = ScalarText(totals);
  EXPECT_EQ(before, "capped 0 " + ScalarText("SELECT " + capped + "::numeric::float8::text") + ", tenant-a 0 " +
                        reserved_a + ", tenant-b 0 " + reserved_b);
  pqxx::nontransaction(conn).exec("SELECT cogo_tenant_spend_recount()");
  EXPECT_EQ(ScalarText(totals), before) << "the recount agrees";
}

// The messages an executor's handler threads hold at once are admitted together, in one
// transaction per group, and each tenant's cap still holds hand-off by hand-off: a group that
// would pass a cap admits the rest and refuses exactly the calls that do not fit (each one
// would pass the cap even after everything admitted), a refusal by the policy does not hold the
// group back, and the running totals match a recount.
TEST_F(ExecutorTest, MessagesHeldAtOnceAreAdmittedTogetherAndEachTenantsCapStillHolds) {
  constexpr int kRounds = 16;
  std::vector<bus::PublishRequest> requests;
  const auto call = [](double usd, const std::string& tenant) {
    return Execute(Payload([=](json& a) { a["budget"]["maxCostUsd"] = usd; }), tenant);
  };
  for (int i = 0; i < kRounds; ++i) {
    requests.push_back(call(0.01, "tenant-a"));
    requests.push_back(call(i % 2 == 0 ? 0.3 : 0.05, "capped"));  // cap 1.00: not all of them fit
    requests.push_back(call(0.02, "tenant-b"));
  }
  requests.push_back(call(5.0, "tenant-a"));  // over the rule's 1.00 per call
  (void)bus_->PublishBatch(requests);
  runtime::WorkerOptions o = Base();
  executor::ConfigureExecutorWorker(o);
  o.concurrency = 16;
  o.batch_size = 64;
  runtime::Worker executor(o, executor::MakeExecutorHandler({DatabaseUrl(), Policy()}, logger_), nullptr,
                           logger_);
  executor.Start();
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' "
                           "AND status IN ('queued', 'running')") == 0;
  }, 60s));
  executor.Drain();

  const auto handed_off = [](const std::string& tenant) {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat' AND tenant = '" + tenant + "'");
  };
  EXPECT_EQ(handed_off("tenant-a"), kRounds);
  EXPECT_EQ(handed_off("tenant-b"), kRounds);
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE role = 'execute' "
                       "AND (payload->'__assignment'->'budget'->>'maxCostUsd')::numeric = 5"),
            "budget_over_cap");
  const double capped = Scalar<double>(
      "SELECT coalesce(sum((payload->'__assignment'->'budget'->>'maxCostUsd')::numeric), 0)::float8 "
      "FROM agent_messages WHERE role = 'chat' AND tenant = 'capped'");
  EXPECT_LE(capped, 1.0 + 1e-9);
  EXPECT_GT(capped, 0.0);
  EXPECT_EQ(Scalar<int64_t>(
                "SELECT count(*) FROM agent_messages WHERE role = 'execute' AND tenant = 'capped' "
                "AND status = 'failed' AND last_error LIKE 'tenant_budget_exhausted:%' AND " +
                std::to_string(capped) + " + (payload->'__assignment'->'budget'->>'maxCostUsd')::numeric <= 1"),
            0)
      << "no call was refused that still fits next to everything admitted";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' AND tenant = 'capped' "
                            "AND status <> 'done' AND (last_error IS NULL OR last_error NOT LIKE "
                            "'tenant_budget_exhausted:%')"),
            0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM (SELECT parent_id FROM agent_messages "
                            "WHERE parent_id IS NOT NULL GROUP BY parent_id HAVING count(*) <> 1) x"),
            0);
  ExpectGroupedAdmissionsAndTotals(*conn_, std::to_string(capped), "0.16", "0.32");
}

// An execute message cancelled while its admission waits: the admission's first message (the
// lock of the leases, the hand-offs, the completions, the reservation, COMMIT) is sent on the
// guess that every lease holds; the lock finds this one gone, the transaction rolls back, and the
// group is admitted again without it. Here the tenant's row is held locked, so the first group waits in
// its reservation and the other messages queue as the next group; one of those is cancelled.
// It gets no hand-off and reserves nothing; every other message is handed off exactly once, and
// the tenant's reservation is exactly theirs.
TEST_F(ExecutorTest, AMessageCancelledWhileItsGroupWaitsIsLeftOutAndTheRestHandedOff) {
  constexpr int kMessages = 4;
  const auto published = bus_->PublishBatch(std::vector<bus::PublishRequest>(
      kMessages, Execute(Payload([](json& a) { a["budget"]["maxCostUsd"] = 0.01; }))));
  pqxx::nontransaction(*conn_).exec("INSERT INTO tenant_spend (tenant, day) VALUES ('tenant-a', cogo_utc_day(now()))");
  auto lock_conn = db::Connect(DatabaseUrl(), "test-lock");
  pqxx::work lock(*lock_conn);
  lock.exec("SELECT 1 FROM tenant_spend WHERE tenant = 'tenant-a' FOR UPDATE");

  runtime::WorkerOptions o = Base();
  executor::ConfigureExecutorWorker(o);
  o.concurrency = kMessages;
  runtime::Worker executor(o, executor::MakeExecutorHandler({DatabaseUrl(), Policy()}, logger_), nullptr,
                           logger_);
  executor.Start();
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "'cogo-executor-spend' AND wait_event_type = 'Lock'") == 1;
  })) << "the first group waits for the tenant's row";
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' AND status = 'running'") ==
           kMessages;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // every handler has queued its admission
  // The waiting group holds its messages' rows: a cancel of one of those would wait for its
  // commit. One that waits no longer than the lock timeout is queued in the next group.
  pqxx::nontransaction(*conn_).exec("SET lock_timeout = '200ms'");
  int64_t cancelled = 0;
  for (auto it = published.rbegin(); it != published.rend() && cancelled == 0; ++it) {
    try {
      if (bus_->Cancel(it->id, "operator")) cancelled = it->id;
    } catch (const pqxx::sql_error&) {  // lock_not_available: in the waiting group
    }
  }
  pqxx::nontransaction(*conn_).exec("RESET lock_timeout");
  ASSERT_NE(cancelled, 0) << "every message was in the first group";
  lock.commit();

  ASSERT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' AND status = 'done'") ==
           kMessages - 1;
  }, 30s));
  executor.Drain();
  EXPECT_EQ(executor.stats().completed, static_cast<uint64_t>(kMessages - 1));
  EXPECT_EQ(executor.stats().lease_lost, 1u) << "the cancelled one is not counted as completed";
  EXPECT_EQ(Status(cancelled), "cancelled");
  EXPECT_EQ(Children(cancelled), 0);
  for (const auto& p : published) {
    if (p.id != cancelled) {
      EXPECT_EQ(Children(p.id), 1) << "message " << p.id;
    }
  }
  EXPECT_EQ(ScalarText("SELECT reserved_usd = 0.03 FROM tenant_spend WHERE tenant = 'tenant-a'"), "t")
      << "reserved: " << ScalarText("SELECT reserved_usd FROM tenant_spend WHERE tenant = 'tenant-a'");
}

// An admission expected to fit its tenant's cap goes in one message with its COMMIT, its
// reservation asserting the cap (sql/027). When the guess is wrong (here the tenant's day was
// spent by someone else after the executor last read its total), the database stops that
// message, nothing of it is written, and the admission is judged again and refused by name: no
// hand-off, the tenant's totals untouched. A tenant the executor knows to be at its cap is then
// judged in two messages, without a failed one. Each admission is caught waiting for the
// tenant's row, which the test holds locked, and its message read from pg_stat_activity.
TEST_F(ExecutorTest, AnAdmissionThatFitsIsOneMessageAndOneThatWouldPassTheCapIsJudgedAgain) {
  pqxx::nontransaction(*conn_).exec("INSERT INTO tenant_spend (tenant, day) VALUES ('capped', cogo_utc_day(now()))");
  // pg_stat_activity keeps a message's first track_activity_query_size bytes (scripts/lib/pg.sh
  // raises the default 1 kB): the reservation and COMMIT come last.
  ASSERT_GE(Scalar<int64_t>("SELECT setting::bigint FROM pg_settings WHERE name = 'track_activity_query_size'"),
            8192);
  auto executor = StartExecutor();
  auto lock_conn = db::Connect(DatabaseUrl(), "test-lock");
  // Publishes one call of 0.4 USD for the capped tenant (cap 1.0) while its row is locked (and,
  // in the same transaction, `change`d), and returns its id and the admission's message.
  const auto admit = [&](const std::string& change) {
    pqxx::work lock(*lock_conn);
    lock.exec("SELECT 1 FROM tenant_spend WHERE tenant = 'capped' FOR UPDATE");
    if (!change.empty()) lock.exec(change);
    const int64_t id =
        bus_->Publish(Execute(Payload([](json& a) { a["budget"]["maxCostUsd"] = 0.4; }), "capped")).id;
    const std::string waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'cogo-executor-spend' AND wait_event_type = 'Lock'";
    EXPECT_TRUE(WaitFor([&] { return Scalar<int64_t>(waiting) == 1; })) << "the admission waits for the row";
    std::string message = ScalarText("SELECT query FROM pg_stat_activity WHERE application_name = "
                                     "'cogo-executor-spend' AND wait_event_type = 'Lock'");
    lock.commit();
    EXPECT_TRUE(WaitFor([&] { return Final(id); }));
    return std::make_pair(id, message);
  };
  const auto one_message = [](const std::string& message) {
    return message.find("EXECUTE cogo_executor_reserve_hand_offs_within_cap(") != std::string::npos &&
           message.find("COMMIT") != std::string::npos;
  };

  const auto [first, first_message] = admit("");
  EXPECT_TRUE(one_message(first_message)) << first_message;
  EXPECT_EQ(Status(first), "done");
  // Another executor spent the tenant's day meanwhile: this one still takes it for 0.4 committed.
  const auto [over, over_message] = admit("UPDATE tenant_spend SET spent_usd = 0.5 WHERE tenant = 'capped'");
  EXPECT_TRUE(one_message(over_message)) << over_message;
  const auto [known_over, known_message] = admit("");
  EXPECT_FALSE(one_message(known_message)) << known_message;
  EXPECT_NE(known_message.find("EXECUTE cogo_executor_reserve_hand_offs("), std::string::npos) << known_message;
  executor.reset();

  for (const int64_t id : {over, known_over}) {
    EXPECT_EQ(Status(id), "failed") << id;
    EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " + std::to_string(id)),
              "tenant_budget_exhausted");
    EXPECT_EQ(Children(id), 0) << id;
  }
  EXPECT_EQ(Children(first), 1);
  EXPECT_EQ(ScalarText("SELECT spent_usd::float8 || ' ' || reserved_usd::float8 FROM tenant_spend "
                       "WHERE tenant = 'capped'"),
            "0.5 0.4");
}

// The admission connection killed while groups are admitted. First where a group has done all
// but its last statement: tenant-b's row is held locked, so a group waits in tenant-b's
// reservation (the last, tenants in name order) with its leases locked, its hand-offs published
// and its execute messages completed; it is killed there until a group of several has failed on
// both its connections and is admitted one message at a time. Then at whatever moment a kill
// lands: mid-statement, between groups, during a commit. Whatever a kill cost, every execute
// message ends once, handed off exactly once or refused over its tenant's cap by name, groups
// still share transactions, and the running totals match a recount.
TEST_F(ExecutorTest, AnAdmissionConnectionKilledMidGroupLosesAndDoublesNothing) {
  constexpr int kRounds = 100;
  std::vector<bus::PublishRequest> requests;
  const auto call = [](double usd, const std::string& tenant) {
    return Execute(Payload([=](json& a) { a["budget"]["maxCostUsd"] = usd; }), tenant);
  };
  for (int i = 0; i < kRounds; ++i) {
    requests.push_back(call(0.01, "tenant-a"));
    requests.push_back(call(i % 2 == 0 ? 0.3 : 0.05, "capped"));  // cap 1.00: most are refused
    requests.push_back(call(0.02, "tenant-b"));
  }
  (void)bus_->PublishBatch(requests);
  // tenant-b's row made before its first admission would make it, so it can be held from the start.
  pqxx::nontransaction(*conn_).exec(
      "INSERT INTO tenant_spend (tenant, day) VALUES ('tenant-b', cogo_utc_day(now()))");
  auto holder = db::Connect(DatabaseUrl(), "cogo-test-holder");
  auto hold = std::make_unique<pqxx::work>(*holder);
  hold->exec("SELECT FROM tenant_spend WHERE tenant = 'tenant-b' FOR UPDATE");

  auto sink = std::make_shared<LogSink>();
  runtime::WorkerOptions o = Base();
  executor::ConfigureExecutorWorker(o);
  o.concurrency = 16;
  o.batch_size = 64;
  runtime::Worker executor(o, executor::MakeExecutorHandler({DatabaseUrl(), Policy()}, MakeTestLogger("executor", sink)),
                           nullptr, logger_);
  executor.Start();

  const std::string spend = "application_name = 'cogo-executor-spend'";
  const std::string blocked = spend + " AND wait_event_type = 'Lock'";
  const auto backends = [](const std::string& which) {
    return Scalar<int64_t>("SELECT count(*) FROM pg_stat_activity WHERE " + which);
  };
  const auto kill = [](const std::string& which) {
    return Scalar<int64_t>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE " + which);
  };
  constexpr const char* kGroupFailed = "admissions failed; admitting them one at a time";
  // The first kills may hit a group of one, or a lone admission after a group failed; while
  // the leader waits, the other handler threads queue theirs, so the next group holds several.
  int64_t kills_mid_group = 0;
  while (sink->Count(kGroupFailed) == 0) {
    ASSERT_LT(kills_mid_group, 12) << sink->Text();
    ASSERT_TRUE(WaitFor([&] { return backends(blocked) == 1 || sink->Count(kGroupFailed) > 0; }, 10s))
        << sink->Text();
    kills_mid_group += kill(blocked);
  }
  hold->commit();
  const auto unfinished = [] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' "
                           "AND status IN ('queued', 'running')");
  };
  ASSERT_GT(unfinished(), 0) << "nothing left to admit after the first kills";
  // Spaced so that the executor reconnects and admits between kills: each lands somewhere else.
  int64_t kills_later = 0;
  for (int i = 0; i < 10 && unfinished() > 0; ++i) {
    std::this_thread::sleep_for(30ms);
    kills_later += kill(spend);
  }
  ASSERT_TRUE(WaitFor([&] { return unfinished() == 0; }, 60s)) << sink->Text();
  executor.Drain();
  EXPECT_GT(kills_later, 0) << "no spend backend to kill while admitting";

  // Done with exactly one hand-off, or refused over the cap by name with none; one final event.
  EXPECT_EQ(Scalar<int64_t>(
                "SELECT count(*) FROM agent_messages m WHERE role = 'execute' AND NOT ("
                "(status = 'done' AND (SELECT count(*) FROM agent_messages c WHERE c.parent_id = m.id) = 1) "
                "OR (status = 'failed' AND tenant = 'capped' AND last_error LIKE 'tenant_budget_exhausted:%' "
                "AND NOT EXISTS (SELECT FROM agent_messages c WHERE c.parent_id = m.id)))"),
            0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages m WHERE role = 'execute' AND "
                            "(SELECT count(*) FROM bus_trail t WHERE t.message_id = m.id "
                            "AND t.event IN ('completed', 'failed', 'dead_lettered')) <> 1"),
            0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'execute_enqueued'"),
            Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat'"));
  const auto handed_off = [](const std::string& tenant) {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat' AND tenant = '" + tenant + "'");
  };
  EXPECT_EQ(handed_off("tenant-a"), kRounds);
  EXPECT_EQ(handed_off("tenant-b"), kRounds);
  const double capped = Scalar<double>(
      "SELECT coalesce(sum((payload->'__assignment'->'budget'->>'maxCostUsd')::numeric), 0)::float8 "
      "FROM agent_messages WHERE role = 'chat' AND tenant = 'capped'");
  EXPECT_LE(capped, 1.0 + 1e-9);
  EXPECT_GT(capped, 0.0);
  EXPECT_EQ(Scalar<int64_t>(
                "SELECT count(*) FROM agent_messages WHERE role = 'execute' AND tenant = 'capped' "
                "AND status = 'failed' AND " +
                std::to_string(capped) + " + (payload->'__assignment'->'budget'->>'maxCostUsd')::numeric <= 1"),
            0)
      << "no call was refused that still fits next to everything admitted";
  ExpectGroupedAdmissionsAndTotals(*conn_, std::to_string(capped), "1", "2");
}

// The running total against what happened: a hand-off that ends gives its reservation back and
// its recorded usage counts instead, whether it succeeded or failed; the row then equals a
// recount from message_usage and the unfinished hand-offs (sql/021, cogo_tenant_spend_recount).
TEST_F(ExecutorTest, AnEndedHandOffGivesItsReservationBackAndWhatItSpentCounts) {
  auto executor = StartExecutor();
  auto target = StartTarget([](HandlerContext& ctx) {
    const json input = json::parse(ctx.message.payload_json)["input"];
    (void)ctx.usage.Report({10, 10, input["spend"].get<double>()});
    if (input.value("fail", false)) return HandlerResult::Fail("model refused");
    return HandlerResult::Complete();
  });
  const auto call = [](double max_cost, double spend, bool fail) {
    json payload = Payload([=](json& a) { a["budget"]["maxCostUsd"] = max_cost; });
    payload["input"] = {{"spend", spend}, {"fail", fail}};
    return Execute(payload, "capped");  // cap 1.00
  };
  const auto ended = [&](int64_t id, const char* event) {
    return WaitFor([&] { return Trail(id).find(event) != std::string::npos; }, 20s);
  };
  const auto done = bus_->Publish(call(0.6, 0.25, false)).id;
  ASSERT_TRUE(ended(done, "execute_done")) << Trail(done);
  // 0.25 spent + 0.7 fits only because the first call's 0.6 was given back.
  const auto failed = bus_->Publish(call(0.7, 0.05, true)).id;
  ASSERT_TRUE(ended(failed, "execute_failed")) << Trail(failed);
  EXPECT_EQ(Status(ChildOf(failed)), "failed");
  target->Drain();  // from here hand-offs stay queued, reserved
  const auto in_flight = bus_->Publish(call(0.7, 0, false)).id;  // 0.30 + 0.7 = the cap
  ASSERT_TRUE(WaitFor([&] { return Final(in_flight); }));
  EXPECT_EQ(Status(in_flight), "done");
  const auto refused = bus_->Publish(call(0.1, 0, false)).id;
  ASSERT_TRUE(WaitFor([&] { return Final(refused); }));
  EXPECT_EQ(ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(refused)),
            "tenant_budget_exhausted: spent or reserved today 1 + maxCostUsd 0.1 exceeds daily cap 1 USD");
  executor->Drain();
  const std::string row = "SELECT spent_usd::float8 || ' ' || reserved_usd::float8 FROM tenant_spend "
                          "WHERE tenant = 'capped'";
  // The last admission folded everything before it; the refusal rolled its own fold back.
  EXPECT_EQ(ScalarText(row), "0.3 0.7");
  pqxx::nontransaction(*conn_).exec("SELECT cogo_tenant_spend_recount()");
  EXPECT_EQ(ScalarText(row), "0.3 0.7") << "the recount from the usage log agrees";
}

// A new UTC day starts the day's spend from zero, while hand-offs still in flight stay reserved;
// usage recorded for an earlier day that arrives late counts for nothing today.
TEST_F(ExecutorTest, ANewUtcDayStartsTheSpendAtZeroAndKeepsWorkInFlightReserved) {
  auto executor = StartExecutor();  // no target worker: hand-offs stay queued
  auto budget = [](double usd) { return [usd](json& a) { a["budget"]["maxCostUsd"] = usd; }; };
  const auto first = bus_->Publish(Execute(Payload(budget(0.4)), "capped")).id;
  ASSERT_TRUE(WaitFor([&] { return Final(first); }));
  ASSERT_EQ(Status(first), "done");
  {
    // As if the row was last written yesterday with 5 USD spent (past the 1.00 cap), and a call
    // that ran yesterday records its usage only now.
    pqxx::work txn(*conn_);
    txn.exec0("UPDATE tenant_spend SET day = day - 1, spent_usd = 5 WHERE tenant = 'capped'");
    txn.exec0("INSERT INTO message_usage (message_id, attempt, tenant, service, role, cost_usd, outcome, "
              "recorded_at) VALUES (999999, 1, 'capped', 'gateway', 'chat', 3, 'completed', "
              "now() - interval '1 day')");
    txn.commit();
  }
  const auto second = bus_->Publish(Execute(Payload(budget(0.6)), "capped")).id;  // 0.4 + 0.6 = cap
  ASSERT_TRUE(WaitFor([&] { return Final(second); }));
  EXPECT_EQ(Status(second), "done");
  const auto third = bus_->Publish(Execute(Payload(budget(0.1)), "capped")).id;
  ASSERT_TRUE(WaitFor([&] { return Final(third); }));
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " +
                       std::to_string(third)),
            "tenant_budget_exhausted");
  executor->Drain();
  EXPECT_EQ(ScalarText("SELECT (day = cogo_utc_day(now()))::text || ' ' || spent_usd::float8 || ' ' || "
                       "reserved_usd::float8 FROM tenant_spend WHERE tenant = 'capped'"),
            "true 0 1");
}

// Admissions fold while target workers end hand-offs and record usage at the same time: no
// change is lost or folded twice, so once everything has ended the running total (the row plus
// the changes not folded yet) holds exactly what was spent and nothing reserved.
TEST_F(ExecutorTest, ConcurrentAdmissionsAndEndingHandOffsKeepTheRunningTotalExact) {
  constexpr int kMessages = 200;
  std::vector<std::unique_ptr<runtime::Worker>> workers;
  for (int i = 0; i < 2; ++i) {
    runtime::WorkerOptions o = Base();
    executor::ConfigureExecutorWorker(o);
    o.concurrency = 8;
    workers.push_back(std::make_unique<runtime::Worker>(
        o, executor::MakeExecutorHandler({DatabaseUrl(), Policy()}, logger_), nullptr, logger_));
    workers.back()->Start();
    workers.push_back(StartTarget([](HandlerContext& ctx) {
      (void)ctx.usage.Report({10, 10, 0.01});
      if (ctx.message.lease.message_id % 3 == 0) return HandlerResult::Fail("model refused");
      return HandlerResult::Complete();
    }));
  }
  // 0.04 each: all of them in flight at once would still fit the 10.00 cap.
  const auto request = Execute(Payload([](json& a) { a["budget"]["maxCostUsd"] = 0.04; }));
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(kMessages, request));
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')") == 0;
  }, 60s));
  for (auto& w : workers) w->Drain();
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat'"), kMessages);
  EXPECT_EQ(ScalarText(
                "SELECT (s.spent_usd + coalesce(sum(c.spent_usd), 0))::float8 || ' ' || "
                "(s.reserved_usd + coalesce(sum(c.reserved_usd), 0))::float8 "
                "FROM tenant_spend s LEFT JOIN tenant_spend_changes c ON c.tenant = s.tenant "
                "WHERE s.tenant = 'tenant-a' GROUP BY s.spent_usd, s.reserved_usd"),
            "2 0");
}

TEST_F(ExecutorTest, TargetHandlerThatOverspendsTokensIsStoppedWithBudgetExceeded) {
  const auto id = bus_->Publish(Execute(Payload())).id;  // maxTokens 1000
  auto executor = StartExecutor();
  std::atomic<int> reports{0};
  auto target = StartTarget([&](HandlerContext& ctx) {
    while (!ctx.stop.stop_requested()) {
      (void)ctx.usage.Report({100, 100, 0.0});
      ++reports;
      std::this_thread::sleep_for(5ms);
    }
    return HandlerResult::Complete();  // the guard outranks this
  });
  ASSERT_TRUE(WaitFor([&] { return Trail(id).find("execute_failed") != std::string::npos; }, 20s))
      << Trail(id);
  EXPECT_EQ(Trail(id), "claimed execute_enqueued completed execute_failed");
  const int64_t child = ChildOf(id);
  EXPECT_EQ(Status(child), "failed");
  EXPECT_EQ(Trail(child), "claimed policy_violation failed");
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " +
                       std::to_string(child)),
            "budget_exceeded");
  EXPECT_EQ(reports.load(), 6) << "stopped by the report that crossed 1000 tokens";
  EXPECT_EQ(ScalarText("SELECT outcome || ' ' || (input_tokens + output_tokens) FROM message_usage "
                       "WHERE message_id = " + std::to_string(child)),
            "budget_exceeded 1200");
  target->Drain();
  executor->Drain();
}

// Hides tenant_spend so the executor's reservation fails (a real database error), and puts it
// back whatever happens.
class HiddenSpendTable {
 public:
  explicit HiddenSpendTable(pqxx::connection& conn) : conn_(conn) {
    pqxx::nontransaction(conn_).exec("ALTER TABLE tenant_spend RENAME TO tenant_spend_hidden");
  }
  ~HiddenSpendTable() {
    pqxx::nontransaction(conn_).exec("ALTER TABLE tenant_spend_hidden RENAME TO tenant_spend");
  }

 private:
  pqxx::connection& conn_;
};

TEST_F(ExecutorTest, TransientFailureRetriesWithTheRuleBackoffThenDeadLetters) {
  const auto id = bus_->Publish(Execute(Payload())).id;  // max_attempts 3
  {
    HiddenSpendTable hidden(*conn_);
    auto executor = StartExecutor();
    ASSERT_TRUE(WaitFor([&] { return Final(id); }, 20s));
    executor->Drain();
  }
  EXPECT_EQ(Status(id), "dead");
  EXPECT_EQ(Trail(id),
            "claimed execute_retry retry_scheduled claimed execute_retry retry_scheduled "
            "claimed execute_failed dead_lettered");
  const auto sid = std::to_string(id);
  EXPECT_EQ(ScalarText("SELECT string_agg(detail->>'delay_ms', ' ' ORDER BY id) FROM bus_events "
                       "WHERE event = 'execute_retry' AND message_id = " + sid),
            "50 100");
  EXPECT_EQ(ScalarText("SELECT detail->>'reason' FROM bus_events WHERE event = 'execute_failed' "
                       "AND message_id = " + sid),
            "attempts_exhausted");
  // The bus scheduled each retry that far ahead, and the next claim waited for it.
  EXPECT_EQ(ScalarText("SELECT string_agg(round(extract(epoch FROM (detail->>'retry_at')::timestamptz - at) "
                       "* 1000)::text, ' ' ORDER BY id) FROM bus_events "
                       "WHERE event = 'retry_scheduled' AND message_id = " + sid),
            "50 100");
  EXPECT_TRUE(Scalar<bool>(
      "SELECT bool_and(c.at >= (r.detail->>'retry_at')::timestamptz) FROM bus_events r "
      "JOIN bus_trail c ON c.message_id = r.message_id AND c.event = 'claimed' "
      "AND (c.detail->>'attempt')::int = (r.detail->>'attempt')::int + 1 "
      "WHERE r.event = 'retry_scheduled' AND r.message_id = " + sid));
  EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " + sid),
            "tenant_spend_unavailable");
  EXPECT_EQ(Children(id), 0);
}

TEST_F(ExecutorTest, SeveralExecutorProcessesHandEachMessageOffExactlyOnce) {
  constexpr int kMessages = 300;
  // 300 x 0.01 USD stays under the tenant's 10 USD cap while every hand-off is in flight.
  const auto request = Execute(Payload([](json& a) {
    a["budget"]["maxCostUsd"] = 0.01;
    a["ttl_ms"] = 600000;
  }));
  const auto policy_file = ScratchFile("policy.json");
  std::ofstream(policy_file) << kPolicy;
  const auto log = ScratchFile("executors.log");
  {
    std::vector<std::unique_ptr<ChildProcess>> executors;
    for (int i = 0; i < 3; ++i) {
      executors.push_back(std::make_unique<ChildProcess>(
          "cogo-executor-dispatcher",
          std::vector<std::string>{"--policy", policy_file, "--poll-ms", "100", "--concurrency",
                                   "3", "--batch-size", "4"},
          log));
    }
    // Publish once all three are ready (connected, listening, waiting), so they compete from the
    // first message.
    ASSERT_TRUE(WaitFor([&] {
      const std::string text = ReadFile(log);
      size_t ready = 0;
      for (size_t at = text.find("cogo-executor-dispatcher ready"); at != std::string::npos;
           at = text.find("cogo-executor-dispatcher ready", at + 1)) {
        ++ready;
      }
      return ready == 3;
    }, 30s)) << "see " << log;
    (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(kMessages, request));
    ASSERT_TRUE(WaitFor([] {
      return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' "
                             "AND status = 'done'") == kMessages;
    }, 120s)) << "see " << log;
    for (auto& e : executors) e->Signal(SIGTERM);
    for (auto& e : executors) EXPECT_EQ(e->Wait(30s), 0) << "see " << log;
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat'"), kMessages);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM (SELECT parent_id FROM agent_messages "
                            "WHERE parent_id IS NOT NULL GROUP BY parent_id HAVING count(*) <> 1) x"),
            0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'execute_enqueued'"),
            kMessages);
  EXPECT_GT(Scalar<int64_t>("SELECT count(DISTINCT detail->>'owner') FROM bus_trail "
                            "WHERE event = 'claimed'"),
            1)
      << "more than one executor took part";
}

TEST_F(ExecutorTest, ExecutorKilledMidStreamLeavesEveryMessageHandedOffExactlyOnce) {
  constexpr int kMessages = 2000;
  const auto request = Execute(Payload([](json& a) {
    a["budget"]["maxCostUsd"] = 0.001;
    a["ttl_ms"] = 600000;
  }));
  for (int i = 0; i < kMessages / 500; ++i) {
    (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(500, request));
  }
  const auto policy_file = ScratchFile("policy.json");
  std::ofstream(policy_file) << kPolicy;
  const auto log = ScratchFile("executor-kill.log");
  const std::vector<std::string> args = {"--policy", policy_file, "--poll-ms", "100",
                                         "--lease-ms", "500", "--heartbeat-ms", "100"};
  auto done = [] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'execute' AND status = 'done'");
  };
  {
    ChildProcess victim("cogo-executor-dispatcher", args, log);
    ASSERT_TRUE(WaitFor([&] { return done() >= 200; }, 60s)) << "see " << log;
    victim.Signal(SIGKILL);
    EXPECT_EQ(victim.Wait(10s), 128 + SIGKILL);
  }
  ASSERT_LT(done(), kMessages) << "killed too late to mean anything";
  std::this_thread::sleep_for(600ms);  // the victim's leases run out
  (void)bus_->Reclaim(kMessages);
  {
    ChildProcess survivor("cogo-executor-dispatcher", args, log);
    ASSERT_TRUE(WaitFor([&] { return done() == kMessages; }, 120s)) << "see " << log;
    survivor.Signal(SIGTERM);
    EXPECT_EQ(survivor.Wait(30s), 0);
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE role = 'chat'"), kMessages);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM (SELECT parent_id FROM agent_messages "
                            "WHERE parent_id IS NOT NULL GROUP BY parent_id HAVING count(*) <> 1) x"),
            0);
}

}  // namespace
}  // namespace cogo::testing
