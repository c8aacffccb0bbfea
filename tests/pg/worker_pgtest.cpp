// The worker runtime and wake-ups against a real PostgreSQL: NOTIFY wakes an idle worker, the
// poll fallback delivers everything without notifications, the LISTEN connection comes back
// after pg_terminate_backend, handler outcomes map to bus outcomes, drain is graceful (and
// counts a handler that outlives the grace), and only the latest claim's outcome counts.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "child_process.h"
#include "cogo/artifacts/store.h"
#include "cogo/db/connection.h"
#include "cogo/log/logging.h"
#include "cogo/runtime/worker.h"
#include "cogo/wake/wake_hub.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;
using runtime::HandlerContext;
using runtime::HandlerResult;

runtime::WorkerOptions Options(std::chrono::milliseconds poll) {
  runtime::WorkerOptions o;
  o.database_url = DatabaseUrl();
  o.service = "test";
  o.role = "echo";
  o.concurrency = 2;
  o.batch_size = 8;
  o.poll = poll;
  o.heartbeat = 200ms;
  o.drain_grace = 5s;
  o.retry_backoff = {10ms, 50ms, 2.0, 0.0};
  return o;
}

int64_t CountStatus(const std::string& status) {
  return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = '" + status + "'");
}

bool WorkerIdle(const std::string& id) {
  return Scalar<int64_t>("SELECT count(*) FROM bus_workers WHERE idle AND worker_id = '" + id + "'") == 1;
}

// Publishes one message to idle workers polling once a minute and expects its handler to have
// run within seconds: a NOTIFY woke them.
void ExpectWokenLongBeforeThePoll(bus::Bus& bus, const std::atomic<int>& calls) {
  const int before = calls.load();
  const auto published_at = std::chrono::steady_clock::now();
  (void)bus.Publish(Message());
  ASSERT_TRUE(WaitFor([&] { return calls.load() == before + 1; }, 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - published_at, 5s) << "delivered by the 60 s poll?";
}

// Waits for the first handler call on message `id`, cancels it and retries it as an operator
// would, and waits for the second call: a second claim of the message while the first handler
// still runs.
void ClaimTwiceAfterCancelAndRetry(bus::Bus& bus, int64_t id, const std::atomic<int>& calls) {
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  ASSERT_TRUE(bus.Cancel(id, "operator"));
  ASSERT_TRUE(bus.Retry(id));
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 2; })) << "the same worker claims it again";
}

// Sessions holding a wake lock (sql/005_wake_locks.sql), i.e. sentinels waiting for a NOTIFY.
int64_t Sentinels() {
  return Scalar<int64_t>(
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1668245297 "
      "AND objsubid = 2 AND mode = 'ExclusiveLock' AND granted "
      "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
}

class WorkerTest : public BusTest {
 protected:
  std::shared_ptr<spdlog::logger> logger_ = log::Get("test");
};

TEST_F(WorkerTest, NotifyWakesAnIdleWorkerLongBeforeThePoll) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(60s), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         &hub, logger_);
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  ExpectWokenLongBeforeThePoll(*bus_, calls);
  EXPECT_GE(hub.notifications(), 1u);
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 1; }));
  worker.Drain();
}

// A started hub LISTENs only once something subscribes: PostgreSQL signals every listening
// session for every NOTIFY, whatever its channel, so a process without workers must not hold one.
TEST_F(WorkerTest, AHubListensFromItsFirstSubscriberOn) {
  const std::string listening = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cogo-wake' "
                                "AND datname = current_database()";
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(hub.backend_pid(), 0);
  EXPECT_EQ(Scalar<int64_t>(listening), 0);
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(60s), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         &hub, logger_);
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  EXPECT_NE(hub.backend_pid(), 0);
  EXPECT_EQ(Scalar<int64_t>(listening), 1);
  ExpectWokenLongBeforeThePoll(*bus_, calls);
  worker.Drain();
}

// Wake-ups go out on one channel per route (sql/028), and a hub LISTENs only on its workers'
// routes' channels: its session is sent no other route's wake-ups, and a route whose first
// worker subscribes after the hub connected is listened on at once.
TEST_F(WorkerTest, AHubHearsOnlyTheRoutesOfItsWorkers) {
  wake::WakeHub hub({DatabaseUrl(), 10s}, logger_);  // a new subscriber ends its wait, not its bound
  hub.Start();
  std::atomic<int> echo_calls{0};
  std::atomic<int> other_calls{0};
  runtime::Worker echo(Options(60s), [&](HandlerContext&) { ++echo_calls; return HandlerResult::Complete(); },
                       &hub, logger_);
  echo.Start();
  ASSERT_TRUE(echo.WaitReady(10s));
  // A sentinel of route test/other in another process: its wake-ups go out on that route's channel.
  auto elsewhere_conn = std::make_unique<pqxx::connection>(DatabaseUrl());
  bus::Bus elsewhere(*elsewhere_conn);
  ASSERT_EQ(elsewhere.AnnounceIdle("elsewhere", "test", "other", {0}), bus::Bus::IdleResult::sentinel);
  const uint64_t before = hub.notifications();
  (void)bus_->Publish(Message("{}", "test", "other"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(hub.notifications(), before) << "the hub was sent another route's wake-up";
  ExpectWokenLongBeforeThePoll(*bus_, echo_calls);  // its own route's still come

  // The other process goes; a worker of test/other joins the connected hub and becomes the
  // route's sentinel: its wake-ups come through the hub, long before its poll.
  elsewhere_conn.reset();
  auto other_options = Options(60s);
  other_options.role = "other";
  runtime::Worker other(other_options, [&](HandlerContext&) { ++other_calls; return HandlerResult::Complete(); },
                        &hub, logger_);
  other.Start();
  ASSERT_TRUE(other.WaitReady(10s));
  ASSERT_TRUE(WaitFor([&] { return other_calls.load() == 1; })) << "the message that waited for a worker";
  ASSERT_TRUE(WaitFor([] { return Sentinels() == 2; }, 5s));
  const auto published_at = std::chrono::steady_clock::now();
  (void)bus_->Publish(Message("{}", "test", "other"));
  ASSERT_TRUE(WaitFor([&] { return other_calls.load() == 2; }, 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - published_at, 5s) << "delivered by the 60 s poll?";
  other.Drain();
  echo.Drain();
}

// WaitReady tells when a worker can be relied on: its connections open, its LISTEN up, its first
// claim made and nothing left but to wait for work. Not before its LISTEN is up, not while its
// database cannot be reached, and no longer once it drains.
TEST_F(WorkerTest, WaitReadyTellsWhenTheWorkerIsConnectedListeningAndWaiting) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);  // not started yet: no LISTEN
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(60s), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         &hub, logger_);
  EXPECT_FALSE(worker.ready());
  worker.Start();
  EXPECT_FALSE(worker.WaitReady(500ms)) << "ready without its LISTEN";
  EXPECT_TRUE(WorkerIdle(worker.id())) << "claimed and waiting, only the LISTEN missing";
  hub.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  EXPECT_TRUE(worker.ready());
  EXPECT_TRUE(WorkerIdle(worker.id()));
  ExpectWokenLongBeforeThePoll(*bus_, calls);
  worker.Drain();
  EXPECT_FALSE(worker.ready());
  EXPECT_FALSE(worker.WaitReady(10s)) << "answers at once for a drained worker";

  // A database nobody can reach: never ready (and the wait ends at its timeout).
  auto unreachable = Options(60s);
  unreachable.database_url = "postgresql://postgres@127.0.0.1:1/cogo?connect_timeout=1";
  runtime::Worker lost(unreachable, [](HandlerContext&) { return HandlerResult::Complete(); }, nullptr, logger_);
  lost.Start();
  EXPECT_FALSE(lost.WaitReady(500ms));
  lost.Drain();
}

// A wake-up names its route "service/role/shard": a name with a slash could never be read back,
// so a worker on it would only ever find work by polling. Such a route is refused up front.
TEST_F(WorkerTest, ARouteNameWithASlashIsRefusedBeforeTheWorkerStarts) {
  for (const auto& [service, role] : {std::pair{"te/st", "echo"}, std::pair{"test", "echo/2"}}) {
    auto options = Options(60s);
    options.service = service;
    options.role = role;
    try {
      runtime::Worker worker(options, [](HandlerContext&) { return HandlerResult::Complete(); },
                             nullptr, logger_);
      ADD_FAILURE() << service << " " << role << ": accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("must not contain '/'"), std::string::npos) << e.what();
    }
  }
  const auto cli = RunCommand("cogo-test-worker", {"--service", "te/st", "--role", "echo"});
  EXPECT_NE(cli.status, 0) << cli.output;
  EXPECT_NE(cli.output.find("must not contain '/'"), std::string::npos) << cli.output;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_workers"), 0);
}

TEST_F(WorkerTest, ProducersNotifyOnlyWhileASentinelWaits) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  auto sub = hub.Subscribe("test", "echo", {0, 1}, [] {});
  ASSERT_TRUE(WaitFor([&] { return sub.heard()->load(); }));
  (void)bus_->PublishBatch({Message(), Message()});
  (void)bus_->Publish(Message());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(hub.notifications(), 0u) << "nobody waits: publishing must not pay for NOTIFY";

  // The idle worker's claim connection.
  pqxx::connection idle_conn(DatabaseUrl());
  bus::Bus idle_bus(idle_conn);
  idle_bus.RegisterWorker({"idle-worker", "test", "echo", {0, 1}, "host", 1});
  ASSERT_EQ(idle_bus.AnnounceIdle("idle-worker", "test", "echo", {0, 1}), bus::Bus::IdleResult::sentinel);
  EXPECT_EQ(Sentinels(), 2) << "one lock per shard";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_workers WHERE idle AND worker_id = 'idle-worker'"), 1);
  {
    // A second idle worker finds shard 1 covered by the first and takes shard 2 only.
    pqxx::connection other_conn(DatabaseUrl());
    bus::Bus other_bus(other_conn);
    EXPECT_EQ(other_bus.AnnounceIdle("other-worker", "test", "echo", {1, 2}),
              bus::Bus::IdleResult::covered);
    EXPECT_EQ(Sentinels(), 3);
  }
  EXPECT_TRUE(WaitFor([] { return Sentinels() == 2; })) << "a closed session's locks go with it";

  (void)bus_->Publish(Message());
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == 1; }, 5s));
  auto shard1 = Message();
  shard1.shard = 1;
  (void)bus_->PublishBatch({shard1, shard1, shard1});
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == 2; }, 5s)) << "one NOTIFY per statement and shard";
  // A message due later wakes the sentinel too: it claims nothing, but then waits no longer than
  // until that message falls due (its poll may be much longer).
  auto delayed = Message();
  delayed.delay_ms = 60000;
  (void)bus_->Publish(delayed);
  uint64_t expected = 3;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s)) << "delayed publish";
  // Every requeue wakes too: release, a failure retried at once or later, reclaim, retry.
  auto claim_one = [&](int64_t lease_ms) {
    return bus_->Claim({"busy-worker", "test", "echo", {0}, 1, lease_ms}).at(0).lease;
  };
  ASSERT_TRUE(bus_->Release(claim_one(30000)));
  ++expected;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s)) << "release";
  EXPECT_EQ(bus_->Fail({claim_one(30000), "transient", bus::FailureKind::retryable, 0}),
            bus::FailOutcome::requeued);
  ++expected;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s)) << "retry at once";
  EXPECT_EQ(bus_->Fail({claim_one(30000), "later", bus::FailureKind::retryable, 60000}),
            bus::FailOutcome::requeued);
  ++expected;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s)) << "retry in a minute";
  (void)claim_one(1);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(bus_->Reclaim(100).requeued, 1);
  ++expected;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s)) << "reclaim";
  const auto doomed = claim_one(30000);
  EXPECT_EQ(bus_->Fail({doomed, "permanent", bus::FailureKind::permanent, 0}), bus::FailOutcome::failed);
  ASSERT_TRUE(bus_->Retry(doomed.message_id));
  ++expected;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s)) << "operator retry";
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(hub.notifications(), expected);

  // Leaving wakes the shards, so a worker waiting on this sentinel takes over at once.
  idle_bus.LeaveIdle("test", "echo", {0, 1});
  EXPECT_EQ(Sentinels(), 0);
  expected += 2;
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() == expected; }, 5s));
}

// The handshake that keeps a wake-up from being lost: a producer holds its probe until it
// commits, so a worker cannot become the sentinel while an unannounced message is in flight,
// and once it is the sentinel, the next claim sees everything committed before.
TEST_F(WorkerTest, NoWorkerBecomesSentinelWhileAPublishIsInFlight) {
  pqxx::connection producer_conn(DatabaseUrl());
  bus::Bus producer(producer_conn);
  pqxx::connection idle_conn(DatabaseUrl());
  bus::Bus idle_bus(idle_conn);
  {
    pqxx::work txn(producer_conn);
    (void)producer.Publish(txn, Message());
    EXPECT_EQ(idle_bus.AnnounceIdle("w", "test", "echo", {0}), bus::Bus::IdleResult::busy);
    EXPECT_EQ(Sentinels(), 0) << "busy: nothing held";
    txn.commit();
  }
  ASSERT_EQ(idle_bus.AnnounceIdle("w", "test", "echo", {0}), bus::Bus::IdleResult::sentinel);
  EXPECT_EQ(idle_bus.Claim({"w", "test", "echo", {0}, 10, 30000}).size(), 1u);
}

TEST_F(WorkerTest, AStoppingSentinelHandsOverToAnotherIdleWorker) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  std::atomic<int> calls{0};
  auto handler = [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); };
  runtime::Worker first(Options(60s), handler, &hub, logger_);
  first.Start();
  ASSERT_TRUE(first.WaitReady(10s));
  ASSERT_TRUE(WaitFor([&] { return Sentinels() == 1; }, 10s));
  runtime::Worker second(Options(60s), handler, &hub, logger_);
  second.Start();
  // The second finds the locks taken and waits for wake-ups (its poll is a minute away).
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Sentinels(), 1);
  const uint64_t before = hub.notifications();
  first.Drain();
  EXPECT_TRUE(WaitFor([&] { return hub.notifications() > before; }, 2s))
      << "the stopping sentinel passes the wake-up on";
  ASSERT_TRUE(WaitFor([&] { return Sentinels() == 1; }, 2s)) << "the second took over at once";
  ExpectWokenLongBeforeThePoll(*bus_, calls);
  second.Drain();
}

// A sentinel whose session dies frees its locks without a NOTIFY: the worker it covered looks
// again within a fraction of a second, not at its poll.
TEST_F(WorkerTest, AWorkerCoveredByADeadSentinelTakesOver) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  auto sentinel_conn = std::make_unique<pqxx::connection>(DatabaseUrl());
  bus::Bus sentinel(*sentinel_conn);
  ASSERT_EQ(sentinel.AnnounceIdle("sentinel", "test", "echo", {0}), bus::Bus::IdleResult::sentinel);
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(60s), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         &hub, logger_);
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));  // covered by the sentinel, waiting
  sentinel_conn.reset();  // the session ends: its locks go, and nobody is told
  ASSERT_TRUE(WaitFor([&] { return Sentinels() == 1; }, 5s)) << "the covered worker took over";
  ExpectWokenLongBeforeThePoll(*bus_, calls);
  worker.Drain();
}

// Records when its handler ran; the first `retries` calls ask to be retried after `delay`.
class TimedHandler {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TimedHandler(int retries = 0, std::chrono::milliseconds delay = 0ms) : retries_(retries), delay_(delay) {}
  HandlerResult operator()(HandlerContext&) {
    std::lock_guard lock(mu_);
    calls_.push_back(Clock::now());
    if (static_cast<int>(calls_.size()) <= retries_) return HandlerResult::Retry("transient", {}, delay_);
    return HandlerResult::Complete();
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return calls_.size();
  }
  Clock::time_point at(size_t i) {
    std::lock_guard lock(mu_);
    return calls_.at(i);
  }

 private:
  std::mutex mu_;
  std::vector<Clock::time_point> calls_;
  const int retries_;
  const std::chrono::milliseconds delay_;
};

// An idle worker wakes when the next delayed message of its route falls due, not at its poll
// (10 s here): a retry after a 300 ms backoff, and a message published 300 ms ahead while the
// worker waits as the sentinel (its publish wakes the sentinel, whose empty claim then says when
// to look). Coarse bounds: within 3 s, and not before it is due.
TEST_F(WorkerTest, AnIdleWorkerWakesWhenItsNextDelayedMessageFallsDueNotAtItsPoll) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  TimedHandler handler(1, 300ms);
  runtime::Worker worker(Options(10s), std::ref(handler), &hub, logger_);
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  (void)bus_->Publish(Message());
  ASSERT_TRUE(WaitFor([&] { return handler.count() == 2; }, 10s)) << "the retry waited for the poll?";
  EXPECT_LT(handler.at(1) - handler.at(0), 3s);
  EXPECT_GE(handler.at(1) - handler.at(0), 250ms) << "claimed before its retry was due";
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 1; }));

  ASSERT_TRUE(WaitFor([&] { return Sentinels() == 1; }, 5s));
  auto delayed = Message();
  delayed.delay_ms = 300;
  const auto published_at = TimedHandler::Clock::now();
  (void)bus_->Publish(delayed);
  ASSERT_TRUE(WaitFor([&] { return handler.count() == 3; }, 10s)) << "the delayed message waited for the poll?";
  EXPECT_LT(handler.at(2) - published_at, 3s);
  EXPECT_GE(handler.at(2) - published_at, 250ms) << "claimed before it was due";
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 2; }));
  worker.Drain();
}

// Without notifications too: a message already waiting when the worker found nothing is claimed
// when it falls due, not at the poll.
TEST_F(WorkerTest, APollingWorkerWakesWhenADelayedMessageFallsDue) {
  auto delayed = Message();
  delayed.delay_ms = 500;
  const auto published_at = TimedHandler::Clock::now();
  (void)bus_->Publish(delayed);
  TimedHandler handler;
  runtime::Worker worker(Options(10s), std::ref(handler), nullptr, logger_);
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return handler.count() == 1; }, 10s)) << "the delayed message waited for the poll?";
  EXPECT_LT(handler.at(0) - published_at, 3s);
  EXPECT_GE(handler.at(0) - published_at, 450ms) << "claimed before it was due";
  worker.Drain();
}

// The gaps between the claims of the worker's claim connection, seen through pg_stat_activity
// (the database's clock) over `span`: each is sent with the statement that asks when the next
// delayed message is due (bus/statements.h kNextDue), in the message the connection ran last
// while it waits.
std::vector<std::chrono::milliseconds> ClaimGaps(std::chrono::milliseconds span) {
  pqxx::connection conn(DatabaseUrl());
  std::vector<int64_t> starts;
  const auto end = std::chrono::steady_clock::now() + span;
  while (std::chrono::steady_clock::now() < end) {
    const pqxx::result rows = pqxx::nontransaction(conn).exec(
        "SELECT (extract(epoch FROM query_start) * 1000)::bigint FROM pg_stat_activity "
        "WHERE application_name = 'cogo-claim:test/echo' AND query LIKE '%EXECUTE cogo_next_due(%'");
    const int64_t ms = rows.empty() ? 0 : rows[0][0].as<int64_t>();
    if (ms != 0 && (starts.empty() || starts.back() != ms)) starts.push_back(ms);
    std::this_thread::sleep_for(20ms);
  }
  std::vector<std::chrono::milliseconds> gaps;
  for (size_t i = 1; i < starts.size(); ++i) gaps.emplace_back(starts[i] - starts[i - 1]);
  return gaps;
}

// ... and an idle worker with no delayed message due before its poll still waits its poll:
// nothing waiting at all, or a message due in an hour.
TEST_F(WorkerTest, AnIdleWorkerWithNothingDueBeforeItsPollWaitsItsPoll) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  for (const bool delayed_an_hour : {false, true}) {
    SCOPED_TRACE(delayed_an_hour ? "a message due in an hour" : "nothing waiting");
    if (delayed_an_hour) {
      auto later = Message();
      later.delay_ms = 3'600'000;
      (void)bus_->Publish(later);  // before the worker starts: its NOTIFY would wake it once
    }
    runtime::Worker worker(Options(700ms), [](HandlerContext&) { return HandlerResult::Complete(); }, &hub, logger_);
    worker.Start();
    ASSERT_TRUE(worker.WaitReady(10s));
    const auto gaps = ClaimGaps(2500ms);
    EXPECT_GE(gaps.size(), 2u);
    for (const auto gap : gaps) EXPECT_GE(gap, 650ms) << "an idle claim before the poll";
    worker.Drain();
  }
}

TEST_F(WorkerTest, PollFallbackDeliversEverythingWithoutNotifications) {
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(50ms), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         nullptr, logger_);
  worker.Start();
  for (int i = 0; i < 5; ++i) {
    (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(40, Message()));
    std::this_thread::sleep_for(30ms);
  }
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 200; }));
  EXPECT_EQ(calls.load(), 200);
  worker.Drain();
  EXPECT_EQ(worker.stats().completed, 200u);
}

TEST_F(WorkerTest, ListenConnectionComesBackAfterTerminate) {
  wake::WakeHub hub({DatabaseUrl(), 200ms, 50ms, 500ms}, logger_);
  hub.Start();
  std::atomic<int> calls{0};
  runtime::Worker worker(Options(60s), [&](HandlerContext&) { ++calls; return HandlerResult::Complete(); },
                         &hub, logger_);
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  const int first_pid = hub.backend_pid();
  EXPECT_TRUE(Scalar<bool>("SELECT pg_terminate_backend(" + std::to_string(first_pid) + ")"));
  // Ready again once the new connection LISTENs on the route.
  ASSERT_TRUE(WaitFor([&] { return hub.connects() >= 2 && worker.ready(); }, 10s));
  EXPECT_NE(hub.backend_pid(), first_pid);
  ASSERT_TRUE(WaitFor([&] { return WorkerIdle(worker.id()); }, 10s));

  ExpectWokenLongBeforeThePoll(*bus_, calls);
  worker.Drain();
}

// On a route at a trickle (the worker waits for NOTIFYs as its sentinel), a handler that
// finishes while nothing else runs or waits writes its outcome itself, on the flusher's
// connection, sparing a thread wake-up; one whose write fails (here its connection was killed)
// leaves the outcome to the flusher, which reconnects and writes it once.
TEST_F(WorkerTest, AHandlerFinishingAloneWritesItsOutcomeAndTheFlusherRetriesOneThatFailed) {
  wake::WakeHub hub({DatabaseUrl()}, logger_);
  hub.Start();
  auto options = Options(60s);
  options.heartbeat = 60s;  // a heartbeat would find the killed connection before the handler does
  runtime::Worker worker(options, [](HandlerContext&) {
    HandlerResult r = HandlerResult::Complete();
    r.events.push_back({0, "noted", "{}"});
    return r;
  }, &hub, logger_);
  worker.Start();
  ASSERT_TRUE(worker.WaitReady(10s));
  ASSERT_TRUE(WaitFor([] { return Sentinels() == 1; }));
  const int64_t first = bus_->Publish(Message()).id;
  ASSERT_TRUE(WaitFor([&] { return worker.stats().flushes == 1; }));
  EXPECT_EQ(worker.stats().flushed_by_handlers, 1u);

  ASSERT_EQ(Scalar<int64_t>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'cogo-flush:test/echo'"),
            1);
  const int64_t second = bus_->Publish(Message()).id;
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 2; }, 15s));
  ASSERT_TRUE(WaitFor([&] { return worker.stats().flushes == 2; }));
  EXPECT_EQ(worker.stats().flushed_by_handlers, 1u) << "the second was written by the flusher";
  EXPECT_EQ(worker.stats().completed, 2u);
  EXPECT_EQ(worker.fatal_error(), "");
  for (const int64_t id : {first, second}) {
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'completed' AND message_id = " +
                              std::to_string(id)),
              1);
    EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'noted' AND message_id = " +
                              std::to_string(id)),
              1);
  }
  worker.Drain();
}

TEST_F(WorkerTest, HandlerOutcomesMapToBusOutcomes) {
  runtime::Worker worker(Options(50ms), [](HandlerContext& c) -> HandlerResult {
    const std::string& p = c.message.payload_json;
    if (p.find("retry") != std::string::npos) return HandlerResult::Retry("transient");
    if (p.find("fail") != std::string::npos) return HandlerResult::Fail("permanent");
    if (p.find("throw_permanent") != std::string::npos) throw runtime::PermanentError("bad_input", "the payload asked for it");
    if (p.find("throw") != std::string::npos) throw std::runtime_error("exploded");
    return HandlerResult::Complete(R"({"ok":true})", "ok");
  }, nullptr, logger_);
  auto retry = Message(R"({"k":"retry"})");
  retry.max_attempts = 3;
  auto thrown = Message(R"({"k":"throw"})");
  thrown.max_attempts = 2;
  const auto ids = bus_->PublishBatch({Message(R"({"k":"ok"})"), retry, Message(R"({"k":"fail"})"),
                                       Message(R"({"k":"throw_permanent"})"), thrown});
  worker.Start();
  ASSERT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status IN ('queued', 'running')") == 0;
  }, 20s));
  worker.Drain();
  EXPECT_EQ(Trail(ids[0].id), "claimed completed");
  EXPECT_EQ(Trail(ids[1].id), "claimed retry_scheduled claimed retry_scheduled claimed dead_lettered");
  EXPECT_EQ(Trail(ids[2].id), "claimed failed");
  EXPECT_EQ(Trail(ids[3].id), "claimed failed");
  EXPECT_EQ(Trail(ids[4].id), "claimed retry_scheduled claimed dead_lettered");
  EXPECT_EQ(ScalarText("SELECT last_error FROM agent_messages WHERE id = " + std::to_string(ids[4].id)),
            "handler_exception: exploded");
  const auto stats = worker.stats();
  EXPECT_EQ(stats.completed, 1u);
  EXPECT_EQ(stats.retried, 3u);
  EXPECT_EQ(stats.failed, 4u);
}

// The bus takes at most max_batch messages per statement. A handler's follow-ups beyond it (and
// those of a flush's outcomes together) are published in more statements of the same transaction;
// the flush threw InvalidMessage before, and the worker stopped as fatal.
TEST_F(WorkerTest, FollowUpsBeyondTheBusBatchLimitCommitWithTheirParent) {
  const size_t children = bus::BusLimits{}.max_batch + 1;
  runtime::Worker worker(Options(50ms), [&](HandlerContext&) {
    HandlerResult r = HandlerResult::Complete();
    bus::PublishRequest child = Message(R"({"child":true})", "test", "sink");
    r.publish.assign(children, child);
    return r;
  }, nullptr, logger_);
  const auto parent = bus_->Publish(Message()).id;
  worker.Start();
  ASSERT_TRUE(WaitFor([&] {
    return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(parent)) == "done" ||
           !worker.fatal_error().empty();
  }, 60s));
  worker.Drain();
  EXPECT_EQ(worker.fatal_error(), "");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE parent_id = " + std::to_string(parent)),
            static_cast<int64_t>(children));
}

// A flush sends its whole transaction in one message on the guess that every lease holds
// (sql/026); when one is gone, the lock stops that message and the batch is written again
// without what belongs to the lost lease. Here the first outcome's flush waits on a row lock
// while the other two queue behind it as one batch, one of them for a message an operator
// cancelled meanwhile: each message still done is done with its child and its event, the
// cancelled one got neither, and its outcome counts as a lost lease.
TEST_F(WorkerTest, AFlushWithALostLeaseWritesTheOthersWithTheirChildrenAndEvents) {
  auto options = Options(50ms);
  options.concurrency = 4;
  const auto published = bus_->PublishBatch(std::vector<bus::PublishRequest>(3, Message()));
  const int64_t first = published[0].id;
  const int64_t cancelled = published[1].id;
  const int64_t last = published[2].id;
  std::atomic<bool> go_first{false};
  std::atomic<bool> go_rest{false};
  std::atomic<int> started{0};
  runtime::Worker worker(options, [&](HandlerContext& c) {
    ++started;
    const auto& go = c.message.lease.message_id == first ? go_first : go_rest;
    while (!go.load()) std::this_thread::sleep_for(2ms);
    HandlerResult r = HandlerResult::Complete();
    r.publish.push_back(Message(R"({"child":true})", "test", "sink"));
    r.events.push_back({0, "noted", "{}"});
    return r;
  }, nullptr, logger_);
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return started.load() == 3; }));

  auto lock_conn = db::Connect(DatabaseUrl(), "test-lock");
  pqxx::work lock(*lock_conn);
  lock.exec("SELECT 1 FROM agent_messages WHERE id = " + std::to_string(first) + " FOR UPDATE");
  go_first = true;
  ASSERT_TRUE(WaitFor([&] {
    return Scalar<int64_t>("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'cogo-flush%' "
                           "AND wait_event_type = 'Lock'") == 1;
  })) << "the first flush waits for the row lock";
  ASSERT_TRUE(bus_->Cancel(cancelled, "operator"));
  go_rest = true;
  std::this_thread::sleep_for(300ms);  // the two outcomes queue behind the waiting flush
  lock.commit();

  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 2; }));
  ASSERT_TRUE(WaitFor([&] { return worker.stats().lease_lost == 1; }));
  worker.Drain();
  const auto children_of = [](int64_t id) {
    return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE parent_id = " + std::to_string(id));
  };
  const auto noted_on = [](int64_t id) {
    return Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'noted' AND message_id = " +
                           std::to_string(id));
  };
  for (const int64_t id : {first, last}) {
    EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)), "done");
    EXPECT_EQ(children_of(id), 1);
    EXPECT_EQ(noted_on(id), 1);
  }
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(cancelled)), "cancelled");
  EXPECT_EQ(children_of(cancelled), 0);
  EXPECT_EQ(noted_on(cancelled), 0);
  EXPECT_EQ(worker.stats().completed, 2u);
}

// The claimer does not wait for the last batch's outcomes to commit: while they are flushed it
// takes one more batch. Here no flush can commit (bus_events is locked, and every completion
// writes its attempt's event), so the worker ends up holding concurrency + 2 x batch leases.
TEST_F(WorkerTest, TheNextBatchIsClaimedWhileTheLastOnesOutcomesAreFlushed) {
  auto options = Options(50ms);
  options.concurrency = 1;
  options.batch_size = 2;
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(8, Message()));
  auto conn = db::Connect(DatabaseUrl(), "test-lock");
  pqxx::work lock(*conn);
  lock.exec("LOCK TABLE bus_events IN EXCLUSIVE MODE");
  runtime::Worker worker(options, [](HandlerContext&) { return HandlerResult::Complete(); }, nullptr, logger_);
  worker.Start();
  EXPECT_TRUE(WaitFor([&] { return CountStatus("running") == 5; }, 10s)) << CountStatus("running");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(CountStatus("running"), 5) << "1 + 2 x 2 leased, no more";
  lock.abort();
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 8; }, 10s));
  worker.Drain();
}

TEST_F(WorkerTest, DrainFinishesRunningWorkAndReleasesTheRest) {
  std::atomic<int> started{0};
  auto options = Options(50ms);
  options.concurrency = 1;
  options.batch_size = 4;
  runtime::Worker worker(options, [&](HandlerContext&) {
    ++started;
    std::this_thread::sleep_for(400ms);
    return HandlerResult::Complete();
  }, nullptr, logger_);
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(4, Message()));
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return started.load() == 1; }));
  worker.Drain();
  EXPECT_EQ(started.load(), 1) << "nothing new starts once draining";
  EXPECT_EQ(CountStatus("done"), 1);
  EXPECT_EQ(CountStatus("queued"), 3);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'queued' AND attempts = 0"), 3)
      << "released messages keep their attempt budget";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_workers"), 0) << "unregistered";
}

// A handler still running when the drain grace runs out is not released (uncounted: it might
// still have side effects while another worker starts the message, and one that always hangs
// would never be dead-lettered): its attempt fails as retryable with the reason drain_timeout.
TEST_F(WorkerTest, DrainGraceRunsOutFailsTheRunningHandlersAsDrainTimeout) {
  auto options = Options(50ms);
  options.drain_grace = 100ms;
  std::atomic<int> saw_stop{0};
  runtime::Worker worker(options, [&](HandlerContext& c) {
    while (!c.stop.stop_requested()) std::this_thread::sleep_for(5ms);
    ++saw_stop;
    return HandlerResult::Complete();
  }, nullptr, logger_);
  auto last_attempt = Message();
  last_attempt.max_attempts = 1;
  const auto ids = bus_->PublishBatch({Message(), last_attempt});
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return CountStatus("running") == 2; }));
  worker.Drain();
  EXPECT_EQ(saw_stop.load(), 2);
  EXPECT_EQ(Trail(ids[0].id), "claimed retry_scheduled") << "counted and retryable";
  EXPECT_EQ(Trail(ids[1].id), "claimed dead_lettered") << "a message that always hangs ends";
  EXPECT_EQ(Scalar<int>("SELECT attempts FROM agent_messages WHERE id = " + std::to_string(ids[0].id)), 1);
  EXPECT_EQ(ScalarText("SELECT string_agg(DISTINCT split_part(last_error, ':', 1), ',') "
                       "FROM agent_messages"),
            "drain_timeout");
  const auto stats = worker.stats();
  EXPECT_EQ(stats.retried, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.released, 0u);
}

TEST_F(WorkerTest, LostLeaseStopsTheHandlerAndItsOutcomeIsRefused) {
  auto options = Options(50ms);
  options.lease = 30000ms;
  options.heartbeat = 100ms;
  std::atomic<bool> saw_stop{false};
  runtime::Worker worker(options, [&](HandlerContext& c) {
    while (!c.stop.stop_requested()) std::this_thread::sleep_for(5ms);
    saw_stop = true;
    return HandlerResult::Complete();
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message()).id;
  worker.Start();
  ASSERT_TRUE(WaitFor([&] { return CountStatus("running") == 1; }));
  ASSERT_TRUE(bus_->Cancel(id, "operator"));
  ASSERT_TRUE(WaitFor([&] { return saw_stop.load(); }, 10s)) << "heartbeat noticed the lost lease";
  ASSERT_TRUE(WaitFor([&] { return worker.stats().lease_lost == 1; }, 10s));
  worker.Drain();
  EXPECT_EQ(Trail(id), "claimed cancelled");
}

// The fencing token at work: cancel -> operator retry lets the same worker claim the message
// again as the same attempt while the first handler, deaf to its stop token, still runs. Only
// the second claim's outcome may count, and the second claim keeps its heartbeat after the
// first outcome is refused.
TEST_F(WorkerTest, OnlyTheLatestClaimsOutcomeCountsAfterCancelAndRetry) {
  auto options = Options(50ms);
  options.lease = 1000ms;
  options.heartbeat = 100ms;
  std::atomic<int> calls{0};
  std::atomic<bool> finish_first{false};
  std::atomic<bool> finish_second{false};
  runtime::Worker worker(options, [&](HandlerContext&) {
    const int call = ++calls;
    auto& finish = call == 1 ? finish_first : finish_second;
    while (!finish.load()) std::this_thread::sleep_for(5ms);
    return HandlerResult::Complete(call == 1 ? R"({"by":"first"})" : R"({"by":"second"})");
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message()).id;
  worker.Start();
  ASSERT_NO_FATAL_FAILURE(ClaimTwiceAfterCancelAndRetry(*bus_, id, calls));

  finish_first = true;
  ASSERT_TRUE(WaitFor([&] { return worker.stats().lease_lost == 1; }, 10s))
      << "the first claim's outcome is refused";
  EXPECT_EQ(CountStatus("running"), 1);
  // Longer than the lease: only heartbeats keep the second claim.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(bus_->Reclaim(10).requeued, 0) << "the second claim kept its heartbeat";

  finish_second = true;
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 1; }, 10s));
  worker.Drain();
  EXPECT_EQ(ScalarText("SELECT result->>'by' FROM agent_messages WHERE id = " + std::to_string(id)),
            "second");
  EXPECT_EQ(worker.stats().completed, 1u);
  EXPECT_EQ(Trail(id), "claimed cancelled retried claimed completed");
}

// A receiver refusing a stale owner, end to end: the artifact store keeps the highest (message
// id, fence) that wrote a task and refuses lower ones (stale_writer). Claim (fence N), cancel,
// retry, claim again (N + 1) while the first handler, deaf to its stop token, still runs; the
// second handler's write is accepted and completes the message, the first one's write, sent
// with its own HandlerContext::fence(), is refused, and its outcome with it: the message ends
// done exactly once, with the second claim's artifact.
TEST_F(WorkerTest, ADownstreamWriteWithAStaleFenceIsRefusedAndOnlyTheLatestClaimCounts) {
  const artifacts::ArtifactStore store(ScratchFile("artifacts"));
  auto options = Options(50ms);
  options.heartbeat = 100ms;
  std::atomic<int> calls{0};
  std::atomic<bool> finish[2] = {false, false};
  std::atomic<int64_t> fences[2] = {0, 0};
  std::atomic<artifacts::WriteOutcome> outcomes[2] = {artifacts::WriteOutcome::other_tenant,
                                                      artifacts::WriteOutcome::other_tenant};
  runtime::Worker worker(options, [&](HandlerContext& c) {
    const int call = ++calls - 1;
    fences[call] = c.fence();
    while (!finish[call].load()) std::this_thread::sleep_for(5ms);
    const std::string by = call == 0 ? "first" : "second";
    outcomes[call] = store.Write("task-1", c.message.tenant, "", {{"edits.json", by}},
                                 {c.message.lease.message_id, c.fence()});
    if (outcomes[call] != artifacts::WriteOutcome::written) {
      return HandlerResult::Fail("artifacts_refused", artifacts::WriteOutcomeName(outcomes[call]));
    }
    return HandlerResult::Complete(nlohmann::json{{"by", by}}.dump());
  }, nullptr, logger_);
  const auto id = bus_->Publish(Message()).id;
  worker.Start();
  ASSERT_NO_FATAL_FAILURE(ClaimTwiceAfterCancelAndRetry(*bus_, id, calls));
  EXPECT_EQ(fences[1].load(), fences[0].load() + 1);

  finish[1] = true;
  ASSERT_TRUE(WaitFor([&] { return CountStatus("done") == 1; }, 10s));
  finish[0] = true;
  ASSERT_TRUE(WaitFor([&] { return worker.stats().lease_lost == 1; }, 10s)) << "the first outcome is refused";
  worker.Drain();
  EXPECT_EQ(outcomes[1].load(), artifacts::WriteOutcome::written);
  EXPECT_EQ(outcomes[0].load(), artifacts::WriteOutcome::stale_writer);
  EXPECT_EQ(*store.Read("task-1", "edits.json", std::nullopt), "second");
  EXPECT_EQ(ScalarText("SELECT status || ' ' || (result->>'by') FROM agent_messages WHERE id = " + std::to_string(id)),
            "done second");
  EXPECT_EQ(Trail(id), "claimed cancelled retried claimed completed");
  EXPECT_EQ(worker.stats().completed, 1u);
  EXPECT_EQ(worker.stats().failed, 0u);
}

}  // namespace
}  // namespace cogo::testing
