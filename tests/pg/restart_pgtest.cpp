// Failure: PostgreSQL restarts, or one connection is killed, under running daemons. Every
// connection (pools, the executor's spend reads, claim, flush, LISTEN) must be replaced on its
// own (db/reconnect.h): every message still ends done with exactly one completion, no attempt is
// spent on it, and once the database is back every HTTP request succeeds at once.
#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "child_process.h"
#include "cogo/auth/jwt.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "front_support.h"
#include "log_sink.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Runs pg_ctl `action` (restart, stop, start) on the test cluster (scripts/cogo-dev test exports
// where it lives). `mode` "immediate" crashes it: no checkpoint, and the WAL not yet written to
// the kernel is lost; the start that follows recovers.
void PgCtl(const std::string& action, const std::string& mode = "fast") {
  const char* bin = std::getenv("COGO_TEST_PG_BIN");
  const char* data = std::getenv("COGO_TEST_PG_DATA");
  ASSERT_TRUE(bin != nullptr && data != nullptr)
      << "COGO_TEST_PG_BIN / COGO_TEST_PG_DATA unset: run the tests with scripts/cogo-dev test";
  const std::string as_owner = getuid() == 0 ? "runuser -u postgres -- " : "";
  const std::string command =
      as_owner + bin + "/pg_ctl -D " + data + " -m " + mode + " -w -t 60 " + action + " > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

void RestartPostgres() { PgCtl("restart"); }

TEST_F(BusTest, WorkerSurvivesPostgresRestartAndCompletesEverythingOnce) {
  constexpr int kMessages = 3000;
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(kMessages, Message()));
  const auto record = ScratchFile("restart.rec");
  const auto log = ScratchFile("restart.log");
  ChildProcess worker("cogo-test-worker",
                      {"--service", "test", "--role", "echo", "--record", record, "--sleep-ms", "2",
                       "--concurrency", "4", "--batch-size", "8", "--poll-ms", "100"},
                      log);
  ASSERT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'") > 300;
  }, 60s));
  conn_.reset();  // the fixture's own connection dies with the server too
  RestartPostgres();
  ASSERT_TRUE(WaitFor([] {
    try {
      return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'") == kMessages;
    } catch (const std::exception&) {
      return false;  // the server is still coming up
    }
  }, 120s)) << "see " << log;
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.Wait(30s), 0) << "a restart is not fatal; see " << log;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'completed'"), kMessages);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(DISTINCT message_id) FROM bus_events WHERE event = 'completed'"),
            kMessages);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("reconnecting"), std::string::npos) << "the worker noticed the restart";
}

runtime::WorkerOptions EchoWorker(const std::string& worker_id = {}) {
  runtime::WorkerOptions o;
  o.database_url = DatabaseUrl();
  o.service = "test";
  o.role = "echo";
  o.poll = 20ms;
  o.worker_id = worker_id;
  o.retry_backoff = {1ms, 1ms, 2.0, 0.0};
  return o;
}

// A handler whose own database connection is lost gives the attempt back, at most
// kAttemptsGivenBack times; after that the failure counts, so a poison situation still ends.
TEST_F(BusTest, ALostConnectionGivesTheAttemptBackABoundedNumberOfTimes) {
  auto message = Message();
  message.max_attempts = 2;
  const auto id = bus_->Publish(message).id;
  std::atomic<int> calls{0};
  runtime::Worker worker(EchoWorker(), [&](runtime::HandlerContext&) -> runtime::HandlerResult {
    ++calls;
    throw pqxx::broken_connection("injected: connection lost");
  }, nullptr, log::Get("test"));
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)) == "dead"; }, 20s));
  worker.Drain();
  EXPECT_EQ(calls.load(), bus::kAttemptsGivenBack + 2);
  EXPECT_EQ(Scalar<int64_t>("SELECT attempts_given_back FROM agent_messages WHERE id = " + std::to_string(id)),
            bus::kAttemptsGivenBack);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'retry_scheduled' "
                            "AND (detail->>'attempt_given_back')::boolean AND message_id = " + std::to_string(id)),
            bus::kAttemptsGivenBack);
}

// A claim whose answer was lost with its connection leaves messages leased to a worker that never
// saw them. `claimed` messages are claimed for `kOrphanOwner` as such a claim; a worker of that
// name then starts, its claim connection is killed, and it runs until no message is queued or
// running. Returns how many times the handler ran.
constexpr const char* kOrphanOwner = "orphan-test-worker";

int RunAfterALostClaimAnswer(bus::Bus& bus, size_t claimed) {
  EXPECT_EQ(bus.Claim({kOrphanOwner, "test", "echo", {0}, static_cast<int>(claimed), 60000}).size(), claimed);
  std::atomic<int> calls{0};
  runtime::Worker worker(EchoWorker(kOrphanOwner), [&](runtime::HandlerContext&) {
    ++calls;
    return runtime::HandlerResult::Complete();
  }, nullptr, log::Get("test"));
  worker.Start();
  EXPECT_TRUE(worker.WaitReady(10s));
  EXPECT_EQ(Scalar<int64_t>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'cogo-claim:test/echo'"), 1);
  EXPECT_TRUE(WaitFor([] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')") == 0;
  }, 20s));
  worker.Drain();
  return calls.load();
}

// When the claim connection comes back, they are released unrun, attempt unspent.
TEST_F(BusTest, AClaimWhoseAnswerWasLostIsReleasedUnrun) {
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(3, Message()));
  EXPECT_EQ(RunAfterALostClaimAnswer(*bus_, 3), 3);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'"), 3);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE attempts <> 1 OR attempts_given_back <> 0"), 0);
  EXPECT_EQ(Trail(Scalar<int64_t>("SELECT min(id) FROM agent_messages")), "claimed released claimed completed");
}

// Nothing ran, so nothing is spent, not even the bounded give-backs a handler's lost connection
// uses: a message with one attempt whose give-backs are used up still runs once (it was
// dead-lettered unrun when the orphan was failed as an infrastructure failure).
TEST_F(BusTest, AClaimWhoseAnswerWasLostSpendsNoAttemptEvenWithTheGiveBacksUsedUp) {
  auto message = Message();
  message.max_attempts = 1;
  const auto id = bus_->Publish(message).id;
  pqxx::nontransaction(*conn_).exec0("UPDATE agent_messages SET attempts_given_back = " +
                                     std::to_string(bus::kAttemptsGivenBack));
  EXPECT_EQ(RunAfterALostClaimAnswer(*bus_, 1), 1);
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)), "done");
  EXPECT_EQ(Scalar<int64_t>("SELECT attempts FROM agent_messages WHERE id = " + std::to_string(id)), 1);
}

// Releasing an orphaned claim is bounded: a release that keeps failing (here a trigger rolls it
// back as a serialization failure, a retryable kind) is tried kOrphanReleaseTries times, then
// logged and left to the reclaimer; meanwhile the worker claims and runs other work. (It used to
// retry on every reconnect, without end, and never got back to claiming.)
TEST_F(BusTest, AnOrphanedClaimWhoseReleaseKeepsFailingIsLeftToTheReclaimer) {
  const int64_t orphan = bus_->Publish(Message()).id;
  ASSERT_EQ(bus_->Claim({kOrphanOwner, "test", "echo", {0}, 1, 60000}).size(), 1u);
  pqxx::nontransaction(*conn_).exec(
      "CREATE SEQUENCE orphan_release_tries; "
      "CREATE FUNCTION refuse_orphan_release() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "  PERFORM nextval('orphan_release_tries'); "  // a sequence is not rolled back
      "  RAISE EXCEPTION 'injected: release refused' USING ERRCODE = '40001'; END $$; "
      "CREATE TRIGGER refuse_orphan_release BEFORE UPDATE ON agent_messages FOR EACH ROW "
      "  WHEN (OLD.id = " + std::to_string(orphan) + " AND OLD.status = 'running' AND NEW.status = 'queued') "
      "  EXECUTE FUNCTION refuse_orphan_release()");
  struct DropTrigger {
    pqxx::connection& conn;
    ~DropTrigger() {
      pqxx::nontransaction(conn).exec("DROP TRIGGER IF EXISTS refuse_orphan_release ON agent_messages; "
                                      "DROP FUNCTION IF EXISTS refuse_orphan_release(); "
                                      "DROP SEQUENCE IF EXISTS orphan_release_tries");
    }
  } drop_trigger{*conn_};
  auto sink = std::make_shared<LogSink>();
  std::atomic<int> calls{0};
  runtime::Worker worker(EchoWorker(kOrphanOwner), [&](runtime::HandlerContext&) {
    ++calls;
    return runtime::HandlerResult::Complete();
  }, nullptr, MakeTestLogger("orphans", sink));
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  ASSERT_EQ(Scalar<int64_t>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'cogo-claim:test/echo'"), 1);
  ASSERT_TRUE(WaitFor([&] { return sink->Count("left to the reclaimer") == 1; }, 10s)) << sink->Text();
  const int64_t other = bus_->Publish(Message()).id;
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 1; }, 10s)) << "the claimer claims again";
  ASSERT_TRUE(WaitFor([&] { return Trail(other) == "claimed completed"; }, 10s)) << Trail(other);
  std::this_thread::sleep_for(300ms);  // ten polls: time for a try too many to show
  EXPECT_EQ(Scalar<int64_t>("SELECT last_value FROM orphan_release_tries"), runtime::kOrphanReleaseTries);
  EXPECT_EQ(sink->Count("release try"), static_cast<size_t>(runtime::kOrphanReleaseTries)) << sink->Text();
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(orphan)), "running");

  // The reclaimer ends it when its lease (never renewed) expires; then it runs, once.
  pqxx::nontransaction(*conn_).exec("DROP TRIGGER refuse_orphan_release ON agent_messages; "
                                    "UPDATE agent_messages SET lease_expires_at = now() WHERE id = " +
                                    std::to_string(orphan));
  EXPECT_EQ(bus_->Reclaim(10).requeued, 1);
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 2; }, 10s));
  ASSERT_TRUE(WaitFor([&] { return Trail(orphan) == "claimed reclaimed claimed completed"; }, 10s)) << Trail(orphan);
  worker.Drain();
}

// The README stack (edge -> brain -> executor -> gateway-chat, real daemons) under a stream of
// chat requests, each POSTed with an Idempotency-Key and repeated with the same key until the
// edge accepts it (a 503 is allowed only while the database is really down).
class StackTest : public BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    ExportEdgeSecrets();
    log_ = ScratchFile("stack.log");
    edge_ = std::make_unique<Daemon>("cogo-edge",
                                     std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"),
                                                              "--rate-per-s", "0"},
                                     log_);
    brain_ = std::make_unique<Daemon>(
        "cogo-orchestrator-brain",
        std::vector<std::string>{"--routing", SourcePath("config/routing.example.json"), "--policy",
                                 SourcePath("config/policy.example.json"), "--poll-ms", "100"},
        log_);
    chat_ = std::make_unique<WorkerDaemon>(
        "cogo-gateway-chat",
        std::vector<std::string>{"--policy", SourcePath("config/policy.example.json"), "--poll-ms", "100"},
        log_);
    executor_ = StartExecutor(log_);
  }
  void TearDown() override {
    executor_.reset();
    chat_.reset();
    brain_.reset();
    edge_.reset();
  }

  // One request, repeated under its key until accepted; returns the HTTP answers it took.
  std::vector<int> Request(const std::string& key) {
    std::vector<int> answers;
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < give_up) {
      auto headers = Auth();
      headers["Idempotency-Key"] = key;
      const auto r = HttpPost(edge_->port(), kPath, kBody, headers);
      answers.push_back(r.status);
      if (r.status == 202 || r.status == 200) {
        std::lock_guard lock(mu_);
        ids_.push_back(json::parse(r.body)["id"].get<int64_t>());
        return answers;
      }
      if (r.status == 503 && r.headers.count("Retry-After") == 0) ++unavailable_without_retry_after_;
      std::this_thread::sleep_for(100ms);
    }
    return answers;
  }

  // `clients` threads send `per_client` requests each while `disturb` runs on this thread.
  // Returns the requests that needed more than one POST.
  int Stream(const std::string& prefix, int clients, int per_client, const std::function<void()>& disturb) {
    std::atomic<int> repeated{0};
    std::atomic<int> lost{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (int i = 0; i < per_client; ++i) {
          const auto answers = Request(prefix + "-" + std::to_string(c) + "-" + std::to_string(i));
          if (answers.size() > 1) ++repeated;
          if (answers.empty() || (answers.back() != 202 && answers.back() != 200)) ++lost;
          std::this_thread::sleep_for(20ms);
        }
      });
    }
    disturb();
    for (auto& t : threads) t.join();
    EXPECT_EQ(lost.load(), 0) << "see " << log_;
    return repeated.load();
  }

  // Every accepted request ends done through the whole stack, with no attempt spent.
  void ExpectEveryRequestDoneOnce() {
    const auto requests = std::to_string(ids_.size());
    EXPECT_TRUE(WaitFor([&] {
      return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done' AND service = 'gateway'") ==
             static_cast<int64_t>(ids_.size());
    }, 60s)) << "see " << log_;
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status <> 'done'"), 0) << "see " << log_;
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 3 * static_cast<int64_t>(ids_.size()))
        << "decide, execute and chat once per request";
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE attempts <> 1"), 0)
        << "no attempt was spent on our own infrastructure's failure: " << Counts();
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'completed'"),
              3 * static_cast<int64_t>(ids_.size()));
    // A handler ran once per claim that was neither given back nor released (a claim whose
    // answer was lost is released unrun); every chat message ran exactly once.
    EXPECT_EQ(Scalar<int64_t>(R"SQL(
SELECT count(*) FROM agent_messages m
WHERE m.service = 'gateway'
  AND (SELECT count(*) FROM bus_trail e WHERE e.message_id = m.id AND e.event = 'claimed') -
      (SELECT count(*) FROM bus_events e WHERE e.message_id = m.id
         AND (e.event = 'released' OR (e.event = 'retry_scheduled'
                                       AND (e.detail->>'attempt_given_back')::boolean))) <> 1)SQL"), 0);
    EXPECT_EQ(Scalar<int64_t>(
                  "SELECT count(DISTINCT message_id) FROM message_usage WHERE service = 'gateway'"),
              static_cast<int64_t>(ids_.size()));
  }

  // Each accepted request (a decide message) has one execute child, and that one chat child:
  // none doubled by a decide or hand-off run again.
  void ExpectOneExecuteAndOneChatPerRequest() {
    EXPECT_EQ(Scalar<int64_t>(R"SQL(
SELECT count(*) FROM agent_messages d
WHERE d.service = 'orchestrator' AND d.role = 'decide'
  AND ((SELECT count(*) FROM agent_messages e WHERE e.parent_id = d.id AND e.role = 'execute') <> 1
       OR (SELECT count(*) FROM agent_messages e JOIN agent_messages c ON c.parent_id = e.id
           WHERE e.parent_id = d.id AND c.service = 'gateway') <> 1))SQL"),
              0);
  }

  // After the disturbance every HTTP request succeeds at once: reads of every request, and new ones.
  void ExpectEveryHttpRequestSucceedsAtOnce(const std::string& prefix) {
    for (int64_t id : ids_) {
      const auto r = HttpGet(edge_->port(), std::string(kPath) + "/" + std::to_string(id), Auth());
      EXPECT_EQ(r.status, 200) << r.body;
    }
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(Request(prefix + "-after-" + std::to_string(i)).size(), 1u) << "see " << log_;
    }
  }

  std::string Counts() {
    return ScalarText(
        "SELECT string_agg(service || '/' || role || ' ' || status || ' attempts=' || attempts || ' n=' || n, '; ') "
        "FROM (SELECT service, role, status, attempts, count(*) AS n FROM agent_messages "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4) c");
  }

  static std::map<std::string, std::string> Auth() {
    return {{"Authorization",
             "Bearer " + auth::MintToken(kTestJwtSecret, {auth::Role::kAuthenticated, "acme", "user-1", std::nullopt},
                                         std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch()).count(),
                                         std::chrono::hours(1))},
            {"apikey", kTestPublishableKey}};
  }

  static constexpr const char* kPath = "/functions/v1/orchestrator-chat";
  static constexpr const char* kBody = R"({"tenant":"acme","intent":"chat","payload":{"message":"hello"}})";

  std::string log_;
  std::unique_ptr<Daemon> edge_;
  std::unique_ptr<Daemon> brain_;
  std::unique_ptr<WorkerDaemon> chat_;
  std::unique_ptr<WorkerDaemon> executor_;
  std::mutex mu_;
  std::vector<int64_t> ids_;
  std::atomic<int> unavailable_without_retry_after_{0};
};

TEST_F(StackTest, RepeatedPostgresRestartsCostNoRequest) {
  constexpr int kRestarts = 5;
  const int repeated = Stream("restart", 4, 25, [&] {
    for (int i = 0; i < kRestarts; ++i) {
      std::this_thread::sleep_for(700ms);
      conn_.reset();
      RestartPostgres();
    }
  });
  std::cout << "[ stack    ] " << ids_.size() << " requests, " << kRestarts << " restarts, " << repeated
            << " needed a repeat\n";
  EXPECT_EQ(unavailable_without_retry_after_.load(), 0) << "a 503 always says when to come back";
  ExpectEveryHttpRequestSucceedsAtOnce("restart");
  ExpectEveryRequestDoneOnce();
}

// Each role's connection killed on its own, the server up throughout: no request even notices.
TEST_F(StackTest, AKilledConnectionOfAnyRoleCostsNoRequest) {
  const std::pair<const char*, const char*> roles[] = {
      {"pool", "application_name IN ('cogo-edge', 'cogo-orchestrator-brain')"},
      {"spend", "application_name = 'cogo-executor-spend'"},
      {"claim", "application_name LIKE 'cogo-claim:%'"},
      {"flush", "application_name LIKE 'cogo-flush:%'"},
      {"listen", "application_name = 'cogo-wake'"},
  };
  for (const auto& [role, which] : roles) {
    int64_t killed = 0;
    const int repeated = Stream(role, 2, 10, [&, which = which] {
      for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(150ms);
        killed += Scalar<int64_t>(
            std::string("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE ") + which);
      }
    });
    EXPECT_GT(killed, 0) << role << ": no such backend";
    EXPECT_EQ(repeated, 0) << role << ": a request failed although the database was up; see " << log_;
  }
  ExpectEveryHttpRequestSucceedsAtOnce("killed");
  ExpectEveryRequestDoneOnce();
}

// While the server is down the edge and the brain say so (503, and /readyz at once); the first
// request after it is back succeeds.
TEST_F(StackTest, ReadinessSaysTheDatabaseIsDownAndTheFirstRequestAfterSucceeds) {
  ASSERT_EQ(Request("before").size(), 1u);
  conn_.reset();
  struct Outage {  // the cluster comes back even when an assertion below fails
    Outage() { PgCtl("stop"); }
    ~Outage() { End(); }
    void End() {
      if (!ended) PgCtl("start");
      ended = true;
    }
    bool ended = false;
  } outage;
  for (const int port : {edge_->port(), brain_->port()}) {
    const auto asked = std::chrono::steady_clock::now();
    const auto ready = HttpGet(port, "/readyz");
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 2s) << "a readiness probe does not wait";
    EXPECT_EQ(ready.status, 503) << ready.body;
    EXPECT_NE(ready.body.find("database_unreachable"), std::string::npos) << ready.body;
    EXPECT_EQ(ready.headers.count("Retry-After"), 1u);
  }
  auto headers = Auth();
  headers["Idempotency-Key"] = "while-down";
  const auto refused = HttpPost(edge_->port(), kPath, kBody, headers);
  EXPECT_EQ(refused.status, 503) << "see " << log_;
  EXPECT_EQ(refused.headers.count("Retry-After"), 1u);
  outage.End();
  EXPECT_EQ(HttpGet(edge_->port(), "/readyz").status, 200);
  // The brain is ready again once its workers have reconnected too (their backoff).
  EXPECT_TRUE(WaitFor([&] { return HttpGet(brain_->port(), "/readyz").status == 200; }, 10s));
  EXPECT_EQ(Request("while-down").size(), 1u) << "see " << log_;
  ExpectEveryHttpRequestSucceedsAtOnce("after-start");
  ExpectEveryRequestDoneOnce();
}

// Immediate shutdowns (crashes: the WAL not yet written is lost) while requests stream and decide
// flushes are in flight: every accepted request still ends with exactly one chat result.
TEST_F(StackTest, CrashesWhileDecideFlushesAreInFlightCostNoRequest) {
  constexpr int kCrashes = 3;
  const int repeated = Stream("crash", 4, 20, [&] {
    for (int i = 0; i < kCrashes; ++i) {
      std::this_thread::sleep_for(700ms);
      conn_.reset();
      PgCtl("restart", "immediate");
    }
  });
  std::cout << "[ stack    ] " << ids_.size() << " requests, " << kCrashes << " crashes, " << repeated
            << " needed a repeat\n";
  ExpectEveryHttpRequestSucceedsAtOnce("crash");
  ExpectEveryRequestDoneOnce();
  ExpectOneExecuteAndOneChatPerRequest();
}

// The brain's decide worker commits its outcomes without waiting for the WAL
// (orchestrator::DecideWorkerOptions: durable_outcomes = false, so its flusher's session runs
// with synchronous_commit off). Seen from outside, through the server: with the WAL writer held
// (SIGSTOP), the decide outcomes become visible to other sessions while the server's WAL write
// position (pg_current_wal_lsn) stays where it was before the brain ran. A commit that waits for
// the WAL flush never does that: it writes and flushes its WAL before it becomes visible. An
// immediate shutdown then loses exactly those outcomes (a crash of PostgreSQL, not of the OS,
// keeps what was written), with the claims before them: the requests, committed durably by the
// edge, are queued again, decided again, and each ends with one execute and one chat message.
TEST_F(StackTest, DecideOutcomesLostInACrashAreDecidedAgainAndNothingIsDoubled) {
  ASSERT_EQ(Request("warm-up").size(), 1u);
  ASSERT_TRUE(WaitFor([] { return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'") == 3; },
                      30s));
  // What the test holds (stopped processes) is let go however it ends.
  int held_walwriter = 0;
  bool daemons_held = false;
  const auto daemons = [&](int signal) {
    brain_->Signal(signal);
    executor_->Signal(signal);
    chat_->Signal(signal);
    daemons_held = signal == SIGSTOP;
  };
  struct LetGo {
    std::function<void()> let_go;
    ~LetGo() { let_go(); }
  } let_go{[&] {
    if (held_walwriter != 0) kill(held_walwriter, SIGCONT);
    if (daemons_held) daemons(SIGCONT);
  }};
  const int walwriter = Scalar<int>("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'");
  constexpr int kRequests = 10;
  std::string ids;
  bool unwritten = false;
  // Another process's durable commit (a worker's 10 s registry heartbeat) writes the WAL for
  // everyone: then this try shows nothing, and the next one is made.
  for (int attempt = 1; attempt <= 3 && !unwritten; ++attempt) {
    daemons(SIGSTOP);  // the executor's durable hand-offs would write the decide outcomes' WAL
    const size_t first = ids_.size();
    for (int i = 0; i < kRequests; ++i) {
      ASSERT_EQ(Request("lost-" + std::to_string(attempt) + "-" + std::to_string(i)).size(), 1u);
    }
    ids.clear();
    for (size_t i = first; i < ids_.size(); ++i) ids += (ids.empty() ? "" : ",") + std::to_string(ids_[i]);
    const std::string before = ScalarText("SELECT pg_current_wal_insert_lsn()::text");
    ASSERT_EQ(kill(walwriter, SIGSTOP), 0);
    held_walwriter = walwriter;
    brain_->Signal(SIGCONT);
    ASSERT_TRUE(WaitFor([&] {
      return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done' AND id IN (" + ids + ")") ==
             kRequests;
    }, 30s)) << "see " << log_;
    brain_->Signal(SIGSTOP);
    unwritten = Scalar<bool>("SELECT pg_current_wal_lsn() <= '" + before + "'::pg_lsn");
    if (!unwritten) {
      ASSERT_EQ(kill(walwriter, SIGCONT), 0);
      held_walwriter = 0;
      daemons(SIGCONT);
    }
  }
  ASSERT_TRUE(unwritten) << "in 3 tries, decide outcomes became visible only once the WAL was written";
  // The crash. The postmaster kills the held WAL writer after its 5 s grace.
  conn_.reset();
  PgCtl("stop", "immediate");
  held_walwriter = 0;
  PgCtl("start");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE id IN (" + ids + ")"), kRequests)
      << "the edge's accepts are durable";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'queued' AND attempts = 0 "
                            "AND id IN (" + ids + ")"),
            kRequests)
      << "the decide outcomes (and the claims before them) were lost with the crash";
  daemons(SIGCONT);
  ExpectEveryRequestDoneOnce();
  ExpectOneExecuteAndOneChatPerRequest();
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'decided' AND message_id IN (" + ids + ")"),
            kRequests)
      << "one decision each: the lost ones left none";
}

}  // namespace
}  // namespace cogo::testing
