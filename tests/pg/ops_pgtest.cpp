// The reclaimer and retention against a real PostgreSQL: expired leases drained in batches,
// queued work past its TTL ended once (malformed TTLs ignored, running rows untouched, several
// reclaimers at once; the deadline stored at publish and read through its index), retention
// that never deletes a row that is not final (events through their ordered index), the CLI's
// one-shot forms, the daemons as processes, and the periodic loop's error handling.
#include <signal.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "child_process.h"
#include "cogo/log/logging.h"
#include "cogo/ops/reclaimer.h"
#include "cogo/ops/retention.h"
#include "cogo/runtime/periodic.h"
#include "bus/statements.h"
#include "executor/statements.h"
#include "ops/statements.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A payload whose assignment carries `ttl` (any JSON) and, unless null, `issued_at`.
std::string WithTtl(const json& ttl, const json& issued_at = nullptr) {
  json a = {{"agent_id", "a"}, {"version", "1"}, {"model", "m"},
            {"budget", {{"maxCostUsd", 0.1}, {"maxTokens", 10}}}, {"ttl_ms", ttl}};
  if (!issued_at.is_null()) a["issued_at"] = issued_at;
  return json{{"__assignment", a}}.dump();
}

std::string Status(int64_t id) {
  return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id));
}

void Exec(const std::string& sql) {
  pqxx::connection conn(DatabaseUrl());
  pqxx::nontransaction(conn).exec(sql);
}

TEST_F(BusTest, ReclaimPassDrainsExpiredLeasesBatchAfterBatch) {
  std::vector<bus::PublishRequest> requests(20, Message());
  for (int i = 0; i < 5; ++i) {
    requests.push_back(Message());
    requests.back().max_attempts = 1;
  }
  (void)bus_->PublishBatch(requests);
  ASSERT_EQ(bus_->Claim({"gone", "test", "echo", {0}, 100, 1}).size(), 25u);
  std::this_thread::sleep_for(20ms);
  const auto report = ops::ReclaimPass(*conn_, {10, 1s, true});
  EXPECT_EQ(report.requeued, 20);
  EXPECT_EQ(report.dead_lettered, 5);
  EXPECT_EQ(report.ttl_expired, 0);
  EXPECT_EQ(report.statements, 4) << "3 reclaim batches (10, 10, 5) and one TTL batch";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'reclaimed'"), 20);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'dead_lettered'"), 5);
}

TEST_F(BusTest, TtlExpiryEndsQueuedWorkPastItsTtlAndNothingElse) {
  const int64_t now = NowMs();
  const auto id = [&](const std::string& payload) { return bus_->Publish(Message(payload)).id; };
  const int64_t expired_issued = id(WithTtl(60000, now - 120000));
  const int64_t expired_created = id(WithTtl(1));
  const int64_t fresh = id(WithTtl(60000, now));
  const int64_t bad_issued_fresh = id(WithTtl(60000, "yesterday"));
  const std::vector<int64_t> malformed = {
      id(WithTtl("abc")), id(WithTtl(1.5)), id(WithTtl(-1)), id(WithTtl(0)), id(WithTtl(1e30)),
      id(WithTtl(nullptr)), id(WithTtl(json::array({1}))), id(R"({"__assignment":"x"})"),
      id(R"({"__assignment":[1]})"), id(R"({"no":"assignment"})")};
  // A malformed issued_at is ignored: created_at + 1 ms has passed.
  const int64_t huge_issued = id(WithTtl(1, 1e30));
  const int64_t negative_issued = id(WithTtl(1, -5));
  // A running message past its TTL belongs to its worker's guard, not to the reclaimer.
  const int64_t running = bus_->Publish(Message(WithTtl(1), "test", "slow")).id;
  ASSERT_EQ(bus_->Claim({"w", "test", "slow", {0}, 1, 60000}).size(), 1u);
  // A hand-off of an execute message: its parent's trail hears of the expiry.
  const int64_t parent = bus_->Publish(Message("{}", "orchestrator", "execute")).id;
  auto child_request = Message(WithTtl(60000, now - 120000), "gateway", "chat");
  child_request.parent_id = parent;
  const int64_t child = bus_->Publish(child_request).id;
  // An execute message that waited past its TTL.
  const int64_t late_execute = bus_->Publish(Message(WithTtl(1), "orchestrator", "execute")).id;
  std::this_thread::sleep_for(20ms);

  EXPECT_EQ(ops::ExpireQueuedTtl(*conn_, 100), 6);
  EXPECT_EQ(ops::ExpireQueuedTtl(*conn_, 100), 0) << "each row ends once";
  for (int64_t ended : {expired_issued, expired_created, child, huge_issued, negative_issued}) {
    SCOPED_TRACE(ended);
    EXPECT_EQ(Status(ended), "failed");
    EXPECT_EQ(Trail(ended).substr(Trail(ended).rfind(' ') + 1), "ttl_expired");
    EXPECT_EQ(ScalarText("SELECT split_part(last_error, ':', 1) FROM agent_messages WHERE id = " +
                         std::to_string(ended)),
              "ttl_expired");
  }
  EXPECT_EQ(Trail(expired_issued), "ttl_expired");
  for (int64_t kept : {fresh, bad_issued_fresh}) EXPECT_EQ(Status(kept), "queued");
  for (size_t i = 0; i < malformed.size(); ++i) EXPECT_EQ(Status(malformed[i]), "queued") << i;
  EXPECT_EQ(Status(running), "running");
  EXPECT_EQ(Trail(parent), "execute_enqueued execute_failed");
  EXPECT_EQ(Trail(late_execute), "ttl_expired execute_failed");
  EXPECT_EQ(Status(late_execute), "failed");
}

// The plan of `statement` (its parameters as literals), with sequential scans priced out: the
// tables here are tiny, and the question is whether an index can serve the statement at all.
// `generic`: the plan a session with db::kPreferIndexScans caches (a worker's claim and flush
// sessions, the executor's admissions), made for any parameters.
std::string PlanOf(pqxx::connection& conn, const std::string& name, const std::string& statement,
                   const std::string& arguments, bool generic = false) {
  pqxx::work txn(conn);
  txn.exec("SET LOCAL enable_seqscan = off");
  if (generic) txn.exec("SET LOCAL plan_cache_mode = force_generic_plan");
  txn.exec("PREPARE " + name + " AS " + statement);
  std::string plan;
  for (const auto& row : txn.exec("EXPLAIN EXECUTE " + name + " (" + arguments + ")")) {
    plan += row[0].as<std::string>() + "\n";
  }
  txn.exec("DEALLOCATE " + name);  // prepared statements outlive a rollback
  return plan;
}

// The TTL rule lives in one place (sql/003's cogo_assignment_deadline): each publish statement
// stores its answer, and the sweep reads queued deadlines through a partial index instead of
// evaluating the function on every queued row (sql/018).
TEST_F(BusTest, TtlSweepReadsTheDeadlineStoredAtPublishThroughItsIndex) {
  const int64_t now = NowMs();
  (void)bus_->Publish(Message(WithTtl(60000, now - 1000)));     // the one-row statement
  auto keyed = Message(WithTtl(5000));
  keyed.idempotency_key = "k";
  (void)bus_->Publish(keyed);                                   // the batch statement
  (void)bus_->PublishBatch({Message(WithTtl(1)), Message(WithTtl("abc")), Message("{}")});
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE ttl_deadline IS NOT NULL"), 3);
  EXPECT_EQ(Scalar<int64_t>(
                "SELECT count(*) FROM agent_messages "
                "WHERE ttl_deadline IS NOT DISTINCT FROM cogo_assignment_deadline(payload, created_at)"),
            5);
  const std::string plan = PlanOf(*conn_, "sweep", ops::sql::kExpireTtl, "500");
  EXPECT_NE(plan.find("agent_messages_ttl_deadline"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("cogo_assignment_deadline"), std::string::npos) << plan;
}

// A worker's session (and the executor's) plans each statement once, generically, and keeps the
// plan until the next ANALYZE. Made on a fresh database, a join of the input with agent_messages hashed a scan of
// the whole table, which the flush then repeated for every batch as the table grew. Every
// statement that finds messages from a batch's input finds them by primary key.
TEST_F(BusTest, BatchStatementsFindTheirMessagesByKeyInAPlanMadeOnAnEmptyTable) {
  ASSERT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 0);
  struct Case {
    const char* statement;
    std::string arguments;
    std::string lookup;  // the index condition each input row is found by
  };
  const std::vector<Case> cases = {
      {bus::sql::kAddEvents, "'[]'", "Index Cond: (id = ANY"},
      {bus::sql::kLockLeases, "'[]'", "Index Cond: (id = ANY"},
      {bus::sql::kComplete, "'[]'", "Index Cond: (id = ANY"},
      {bus::sql::kHeartbeat, "'[]', 1000", "Index Cond: (id = ANY"},
      {bus::sql::kFindByKey, "'[]'", "Index Cond: ((service = x.service) AND (role = x.role) AND (tenant = x.tenant)"},
      {bus::sql::kLockAllLeases.c_str(), "'[]'", "Index Cond: (id = ANY"},
      {bus::sql::kCompleteAll.c_str(), "'[]'", "Index Cond: (id = ANY"},
      {executor::sql::kReserveHandOffs, "'t', '{}'", "Index Cond: (parent_id = ANY"},
      {executor::sql::kReserveHandOffsWithinCap.c_str(), "'t', '{}', '1'", "Index Cond: (parent_id = ANY"},
  };
  for (const auto& c : cases) {
    const std::string plan = PlanOf(*conn_, "batch", c.statement, c.arguments, true);
    EXPECT_NE(plan.find(c.lookup), std::string::npos) << plan;
  }
  // And on a table with statistics: a plan made for any size of input still looks each row up.
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(600, Message()));
  ASSERT_EQ(bus_->Claim({"w1", "test", "echo", {0}, 400, 30000}).size(), 400u);
  Exec("ANALYZE agent_messages");
  for (const auto& c : cases) {
    const std::string plan = PlanOf(*conn_, "batch", c.statement, c.arguments, true);
    EXPECT_NE(plan.find(c.lookup), std::string::npos) << "after ANALYZE:\n" << plan;
  }
}

// The newest WAL position written to any page of an index (pageinspect).
std::string NewestPageLsn(const std::string& index) {
  Exec("CREATE EXTENSION IF NOT EXISTS pageinspect");
  return ScalarText("SELECT max(h.lsn)::text FROM generate_series(0, pg_relation_size('" + index +
                    "') / current_setting('block_size')::int - 1) AS b, "
                    "page_header(get_raw_page('" + index + "', b::int)) AS h");
}

// agent_messages_finished holds finished rows only (sql/025): a claim adds a row version with
// no finished_at, which in PostgreSQL 15 rewrote the summary of a vacuumed range of unfinished
// rows every time; now it does not touch the index. The completion's finished_at is indexed,
// and retention still finds what it prunes through the index.
TEST_F(BusTest, AClaimLeavesTheFinishedIndexAloneAndACompletionIsIndexed) {
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(50, Message()));
  Exec("VACUUM agent_messages");  // summarizes every range, as autovacuum would
  const std::string vacuumed = NewestPageLsn("agent_messages_finished");
  const auto claimed = bus_->Claim({"w1", "test", "echo", {0}, 50, 30000});
  ASSERT_EQ(claimed.size(), 50u);
  EXPECT_EQ(NewestPageLsn("agent_messages_finished"), vacuumed) << "the claims wrote to the index";
  std::vector<bus::Completion> completions;
  for (const auto& m : claimed) completions.push_back({m.lease, {}, {}, {}});
  (void)bus_->CompleteBatch(completions);
  EXPECT_NE(NewestPageLsn("agent_messages_finished"), vacuumed) << "the completions are not indexed";
  const std::pair<const char*, const char*> readers[] = {{ops::sql::kPruneMessages, "'{done}', 1000, 10"},
                                                         {ops::sql::kCountMessages, "'{done}', 1000"}};
  for (const auto& [statement, arguments] : readers) {
    const std::string plan = PlanOf(*conn_, "prune", statement, arguments, true);
    EXPECT_NE(plan.find("Bitmap Index Scan on agent_messages_finished"), std::string::npos) << plan;
  }
}

TEST_F(BusTest, SeveralReclaimersEndEachExpiredRowExactlyOnce) {
  constexpr int kRows = 400;
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(kRows, Message(WithTtl(1))));
  std::this_thread::sleep_for(20ms);
  std::atomic<int64_t> ended{0};
  std::vector<std::jthread> reclaimers;
  for (int i = 0; i < 4; ++i) {
    reclaimers.emplace_back([&] {
      pqxx::connection conn(DatabaseUrl());
      while (true) {
        const int64_t n = ops::ExpireQueuedTtl(conn, 25);
        ended += n;
        if (n == 0) break;
      }
    });
  }
  reclaimers.clear();
  EXPECT_EQ(ended.load(), kRows);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'ttl_expired'"), kRows);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(DISTINCT message_id) FROM bus_events WHERE event = 'ttl_expired'"),
            kRows);
}

class RetentionTest : public BusTest {
 protected:
  // One message per case, aged by moving its timestamps into the past.
  int64_t Row(const std::string& status, const std::string& finished_ago) {
    const int64_t id = bus_->Publish(Message()).id;
    Exec("UPDATE agent_messages SET status = '" + status + "', finished_at = " +
         (finished_ago.empty() ? "NULL" : "now() - interval '" + finished_ago + "'") +
         ", created_at = now() - interval '30 days' WHERE id = " + std::to_string(id));
    return id;
  }

  static ops::RetentionOptions Options() {
    ops::RetentionOptions o;
    o.finished_max_age = 1h;
    o.dead_max_age = 10h;
    o.events_max_age = 1h;
    o.usage_max_age = 1h;
    o.batch_size = 2;
    o.pause = 1ms;
    return o;
  }

  // Rows of every status, old and new; returns the ids that must survive.
  std::vector<int64_t> Populate() {
    std::vector<int64_t> keep;
    for (const char* s : {"done", "failed", "cancelled", "done", "failed"}) (void)Row(s, "2 hours");
    keep.push_back(Row("done", "10 minutes"));
    keep.push_back(Row("dead", "2 hours"));      // dead letters are kept longer
    (void)Row("dead", "20 hours");
    // Not final: never deleted, whatever their timestamps say.
    keep.push_back(Row("queued", "3 days"));
    keep.push_back(Row("running", "3 days"));
    keep.push_back(Row("queued", ""));
    Exec("INSERT INTO bus_events (message_id, event, service, role, tenant, at) "
         "SELECT g, 'old', 's', 'r', 't', now() - interval '2 hours' FROM generate_series(1, 5) g "
         "UNION ALL SELECT g, 'new', 's', 'r', 't', now() FROM generate_series(1, 2) g");
    Exec("INSERT INTO message_usage (message_id, attempt, tenant, service, role, outcome, recorded_at) "
         "VALUES (1, 1, 't', 's', 'r', 'completed', now() - interval '2 hours'), "
         "(2, 1, 't', 's', 'r', 'completed', now())");
    return keep;
  }
};

TEST_F(RetentionTest, PrunesOnlyFinalRowsPastTheirAgesInBatches) {
  const auto keep = Populate();
  const int64_t old_events =
      Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE at < now() - interval '1 hour'");
  const auto would = ops::CountPrunable(*conn_, Options());
  EXPECT_EQ(would.finished, 5);
  EXPECT_EQ(would.dead, 1);
  EXPECT_EQ(old_events, 5);
  EXPECT_EQ(would.events, old_events);
  EXPECT_EQ(would.usage, 1);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 11) << "a dry run deletes nothing";

  const auto deleted = ops::Prune(*conn_, Options());
  EXPECT_EQ(deleted.finished, 5);
  EXPECT_EQ(deleted.dead, 1);
  EXPECT_EQ(deleted.events, old_events);
  EXPECT_EQ(deleted.usage, 1);
  EXPECT_EQ(ScalarText("SELECT string_agg(id::text, ',' ORDER BY id) FROM agent_messages"),
            [&] {
              std::string ids;
              for (int64_t id : keep) ids += (ids.empty() ? "" : ",") + std::to_string(id);
              return ids;
            }());
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM message_usage"), 1);
  EXPECT_EQ(ops::Prune(*conn_, Options()).total(), 0);
}

// A batch of events reads only its own rows: oldest first through bus_events_at_order, deleted
// by ctid (bus_events.id has no index: deleting by id scanned the table for every batch).
TEST_F(RetentionTest, EventsArePrunedThroughTheirOrderedIndexBatchAfterBatch) {
  Exec("INSERT INTO bus_events (message_id, event, service, role, tenant, at) "
       "SELECT g, 'old', 's', 'r', 't', now() - interval '3 hours' + g * interval '1 second' "
       "FROM generate_series(1, 7) g UNION ALL "
       "SELECT g, 'same', 's', 'r', 't', now() - interval '2 hours' FROM generate_series(1, 5) g "
       "UNION ALL SELECT 0, 'new', 's', 'r', 't', now()");
  const std::string plan =
      PlanOf(*conn_, "prune_events", ops::sql::kPruneEvents, "3600000, 2, '-infinity'");
  EXPECT_NE(plan.find("Tid Scan on bus_events"), std::string::npos) << plan;
  EXPECT_NE(plan.find("bus_events_at_order"), std::string::npos) << plan;
  auto options = Options();
  options.batch_size = 2;  // seven batches, three of them among rows of one `at`
  EXPECT_EQ(ops::Prune(*conn_, options).events, 12);
  EXPECT_EQ(ScalarText("SELECT string_agg(event, ',') FROM bus_events"), "new");
}

TEST_F(RetentionTest, CliPruneDryRunCountsAndReclaimReportsTtlExpiry) {
  (void)Populate();
  const std::vector<std::string> ages = {"--finished-max-age", "1h", "--dead-max-age", "10h",
                                         "--events-max-age", "1h", "--usage-max-age", "1h"};
  std::vector<std::string> args = {"prune", "--dry-run"};
  args.insert(args.end(), ages.begin(), ages.end());
  const auto dry = RunCommand("cogo", args);
  ASSERT_EQ(dry.status, 0) << dry.output;
  EXPECT_EQ(json::parse(dry.output)["would_delete"]["finished"], 5) << dry.output;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 11);
  args.erase(args.begin() + 1);
  const auto real = RunCommand("cogo", args);
  ASSERT_EQ(real.status, 0) << real.output;
  EXPECT_EQ(json::parse(real.output)["deleted"]["dead"], 1) << real.output;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 5);

  const auto bad = RunCommand("cogo", {"prune", "--finished-max-age", "7 days"});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--finished-max-age"), std::string::npos) << bad.output;

  (void)bus_->Publish(Message(WithTtl(1)));
  std::this_thread::sleep_for(20ms);
  const auto reclaim = RunCommand("cogo", {"reclaim"});
  ASSERT_EQ(reclaim.status, 0) << reclaim.output;
  EXPECT_EQ(json::parse(reclaim.output)["ttl_expired"], 1) << reclaim.output;
}

TEST_F(BusTest, ReclaimerAndRetentionDaemonsRunAndStopOnSigterm) {
  const int64_t stale = bus_->Publish(Message()).id;
  ASSERT_EQ(bus_->Claim({"gone", "test", "echo", {0}, 1, 1}).size(), 1u);
  const int64_t late = bus_->Publish(Message(WithTtl(1))).id;
  const int64_t old_done = bus_->Publish(Message()).id;
  Exec("UPDATE agent_messages SET status = 'done', finished_at = now() - interval '2 days' WHERE id = " +
       std::to_string(old_done));
  const auto log = ScratchFile("ops-daemons.log");
  ChildProcess reclaimer("cogo-bus-reclaimer", {"--interval", "100ms", "--batch-size", "10"}, log);
  ChildProcess retention("cogo-bus-retention", {"--interval", "100ms", "--finished-max-age", "1d"}, log);
  EXPECT_TRUE(WaitFor([&] { return Status(stale) == "queued" && Status(late) == "failed"; }, 20s))
      << "see " << log;
  EXPECT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE id = " + std::to_string(old_done)) == 0;
  }, 20s)) << "see " << log;
  EXPECT_EQ(Status(stale), "queued") << "retention never touches a non-final row";
  reclaimer.Signal(SIGTERM);
  retention.Signal(SIGTERM);
  EXPECT_EQ(reclaimer.Wait(10s), 0) << "see " << log;
  EXPECT_EQ(retention.Wait(10s), 0) << "see " << log;
}

TEST(PeriodicTask, RetriesTransientErrorsAndStopsAtTheFirstFatalOne) {
  std::atomic<int> calls{0};
  runtime::PeriodicTask task(
      {"periodic-test", DatabaseUrl(), 10ms, 20ms},
      [&](pqxx::connection&, std::stop_token) {
        const int n = ++calls;
        if (n == 1) throw pqxx::broken_connection("injected: connection lost");
        if (n == 4) throw std::logic_error("injected: a bug");
      },
      log::Get("test"));
  task.Start();
  ASSERT_TRUE(WaitFor([&] { return !task.FatalError().empty(); }, 10s));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 4) << "nothing runs after a fatal error";
  EXPECT_EQ(task.runs(), 2u);
  EXPECT_EQ(task.FatalError(), "periodic-test: injected: a bug");
  task.Drain();
}

}  // namespace
}  // namespace cogo::testing
