// Every bus operation and state transition against a real PostgreSQL, legal and illegal.
#include <sys/socket.h>

#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "cogo/db/connection.h"
#include "cogo/db/pipelined_transaction.h"
#include "cogo/db/reconnect.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using bus::FailOutcome;
using bus::FailureKind;

bus::ClaimRequest ClaimOn(const std::string& owner, int limit = 1, int64_t lease_ms = 30000) {
  bus::ClaimRequest r;
  r.owner = owner;
  r.service = "test";
  r.role = "echo";
  r.limit = limit;
  r.lease_ms = lease_ms;
  return r;
}

std::string Status(int64_t id) {
  return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id));
}

TEST_F(BusTest, PublishClaimCompleteWritesTrail) {
  const auto published = bus_->Publish(Message(R"({"q":"hello"})"));
  ASSERT_TRUE(published.created);
  EXPECT_EQ(Status(published.id), "queued");

  auto claimed = bus_->Claim(ClaimOn("w1"));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].lease.message_id, published.id);
  EXPECT_EQ(claimed[0].lease.attempt, 1);
  EXPECT_EQ(claimed[0].tenant, "tenant-a");
  EXPECT_EQ(claimed[0].payload_json, R"({"q": "hello"})");
  EXPECT_EQ(Status(published.id), "running");

  ASSERT_TRUE(bus_->Complete({claimed[0].lease, R"({"answer":42})", "42", "s3://x"}));
  EXPECT_EQ(Status(published.id), "done");
  EXPECT_EQ(ScalarText("SELECT result->>'answer' || result_snippet || result_url FROM agent_messages"),
            "4242s3://x");
  EXPECT_EQ(Trail(published.id), "claimed completed");
  EXPECT_EQ(ScalarText("SELECT count(*) FROM agent_messages WHERE finished_at IS NOT NULL "
                       "AND lease_owner IS NULL"),
            "1");
}

// One bus_events row per attempt, when it ends (sql/019): the claim writes none, the running
// attempt is the message row, and the ending event carries the claim; bus_trail reads it whole.
TEST_F(BusTest, AnAttemptWritesOneEventWhenItEndsAndItCarriesTheClaim) {
  const auto id = bus_->Publish(Message()).id;
  const auto first = bus_->Claim(ClaimOn("w1")).at(0).lease;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events"), 0) << "a claim writes no row";
  EXPECT_EQ(ScalarText("SELECT event || ' ' || (detail->>'owner') || ' ' || (detail->>'attempt') || ' ' || "
                       "(detail->>'fence') || ' ' || (at = m.started_at)::text "
                       "FROM bus_trail t JOIN agent_messages m ON m.id = t.message_id"),
            "claimed w1 1 1 true")
      << "the running attempt, read from the message row";
  ASSERT_EQ(bus_->Fail({first, "boom", FailureKind::retryable, 0}), FailOutcome::requeued);
  const auto second = bus_->Claim(ClaimOn("w2")).at(0).lease;
  ASSERT_TRUE(bus_->Complete({second, "", "", ""}));

  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events"), 2) << "one row per attempt";
  EXPECT_EQ(ScalarText("SELECT string_agg(event || ' ' || (detail->>'owner') || ' ' || (detail->>'attempt') "
                       "|| ' ' || (detail->>'fence') || ' ' || ((detail->>'claimed_at')::timestamptz < at)::text, "
                       "', ' ORDER BY id) FROM bus_events"),
            "retry_scheduled w1 1 1 true, completed w2 2 2 true");
  EXPECT_EQ(ScalarText("SELECT string_agg(event || ' ' || (detail->>'owner') || ' ' || (detail->>'attempt') "
                       "|| ' ' || (detail->>'fence'), ', ' ORDER BY at, ord, id) FROM bus_trail"),
            "claimed w1 1 1, retry_scheduled w1 1 1, claimed w2 2 2, completed w2 2 2");
  EXPECT_EQ(Trail(id), "claimed retry_scheduled claimed completed");
}

TEST_F(BusTest, IdempotencyKeyReturnsTheFirstMessage) {
  auto request = Message();
  request.idempotency_key = "req-1";
  const auto first = bus_->Publish(request);
  const auto second = bus_->Publish(request);
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(first.id, second.id);

  // Inside one batch too, and next to new keys.
  auto other = Message();
  other.idempotency_key = "req-2";
  const auto batch = bus_->PublishBatch({other, request, other});
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_TRUE(batch[0].created);
  EXPECT_FALSE(batch[1].created);
  EXPECT_EQ(batch[1].id, first.id);
  EXPECT_FALSE(batch[2].created);
  EXPECT_EQ(batch[2].id, batch[0].id);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 2);

  // The key is scoped to the route and tenant.
  auto elsewhere = request;
  elsewhere.tenant = "tenant-b";
  EXPECT_TRUE(bus_->Publish(elsewhere).created);
}

// db::PipelinedTransaction, as a flush uses it: statements queued together reach the server in
// one message and commit together; arguments of any text survive their quoting as literals; a
// lock that finds a lease gone stops the message, nothing after it is written, and the
// connection is usable again at once.
TEST_F(BusTest, APipelinedTransactionCommitsTogetherAndAFailedLockWritesNothing) {
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(2, Message()));
  const auto claimed = bus_->Claim(ClaimOn("w1", 2));
  ASSERT_EQ(claimed.size(), 2u);
  const bus::Lease& first = claimed[0].lease;
  const bus::Lease& second = claimed[1].lease;
  const std::string awkward = "it's a \\ back'slash, \"quoted\", \u00e9 \u2713 ''";
  {
    db::PipelinedTransaction t(*conn_);
    (void)bus_->QueueLockAllLeases(t, {first});
    (void)bus_->QueueAddEvents(t, {{first.message_id, "noted", nlohmann::json{{"text", awkward}}.dump()}});
    const size_t completed = bus_->QueueComplete(t, {{first, "{}", {}, {}}});
    const std::vector<pqxx::result> results = t.Send();
    EXPECT_EQ(bus::Bus::ReadHeld(results.at(completed), {first}), std::vector<bool>{true});
    EXPECT_EQ(Status(first.message_id), "running") << "another session sees nothing before the commit";
    (void)t.Commit();
  }
  EXPECT_EQ(Status(first.message_id), "done");
  EXPECT_EQ(ScalarText("SELECT detail->>'text' FROM bus_events WHERE event = 'noted'"), awkward);

  bus::Lease stale = second;
  stale.fence += 1;  // a later claim's lease: this one no longer holds
  try {
    db::PipelinedTransaction t(*conn_);
    (void)bus_->QueueLockAllLeases(t, {stale});
    (void)bus_->QueueComplete(t, {{second, "{}", {}, {}}});
    (void)t.Commit();
    ADD_FAILURE() << "the lock let a lost lease through";
  } catch (const std::exception& e) {
    EXPECT_TRUE(bus::IsLeaseLost(e)) << e.what();
    EXPECT_EQ(db::Classify(e), db::FailureKind::other) << e.what();
  }
  EXPECT_EQ(Status(second.message_id), "running") << "the completion queued after the failed lock was written";
  EXPECT_TRUE(bus_->Complete({second, "{}", {}, {}})) << "the connection is usable after the rollback";
}

// The completion that asserts its leases (a flush of completions, which sends no lock): when
// one is gone, what was queued before it (events, children) rolls back with it.
TEST_F(BusTest, AnAllOrNothingCompletionRollsBackWhatWasQueuedBeforeIt) {
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(2, Message()));
  const auto claimed = bus_->Claim(ClaimOn("w1", 2));
  ASSERT_EQ(claimed.size(), 2u);
  const bus::Lease& first = claimed[0].lease;
  bus::Lease stale = claimed[1].lease;
  stale.fence += 1;  // a later claim's lease: this one no longer holds
  const auto queue_children_and_events = [&](db::PipelinedTransaction& t) {
    (void)bus_->QueueAddEvents(t, {{first.message_id, "noted", "{}"}});
    bus::PublishRequest child = Message(R"({"child":true})", "test", "sink");
    child.parent_id = first.message_id;
    (void)bus_->QueuePublish(t, {child});
  };
  try {
    db::PipelinedTransaction t(*conn_);
    queue_children_and_events(t);
    (void)bus_->QueueCompleteAll(t, {{first, "{}", {}, {}}, {stale, "{}", {}, {}}});
    (void)t.Commit();
    ADD_FAILURE() << "the completion let a lost lease through";
  } catch (const std::exception& e) {
    EXPECT_TRUE(bus::IsLeaseLost(e)) << e.what();
  }
  EXPECT_EQ(Status(first.message_id), "running");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event IN ('noted', 'child_enqueued', 'completed')"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE parent_id IS NOT NULL"), 0);

  db::PipelinedTransaction t(*conn_);  // the connection is usable after the rollback
  queue_children_and_events(t);
  (void)bus_->QueueCompleteAll(t, {{first, "{}", {}, {}}});
  (void)t.Commit();
  EXPECT_EQ(Status(first.message_id), "done");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE parent_id = " +
                            std::to_string(first.message_id)),
            1);
  // The trail reads cause before effect: the domain event, the child, then the completion.
  EXPECT_EQ(ScalarText("SELECT string_agg(event, ',' ORDER BY id) FROM bus_events WHERE message_id = " +
                       std::to_string(first.message_id)),
            "noted,child_enqueued,completed");
}

// A connection that breaks while a message carrying COMMIT is in flight may have committed it:
// the caller hears pqxx::in_doubt_error (never "nothing committed, run it again"), as from
// pqxx::work's commit.
TEST_F(BusTest, APipelinedCommitWhoseConnectionBreaksIsInDoubt) {
  conn_->prepare("test_sleep", "SELECT pg_sleep(10)");
  const int pid = conn_->backendpid();
  std::thread killer([pid] {
    auto admin = db::Connect(DatabaseUrl(), "test-kill");
    for (int i = 0; i < 500; ++i) {  // until the sleep runs, then terminate that backend
      const auto r = pqxx::nontransaction(*admin).exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
          " AND query LIKE '%test_sleep%' AND state = 'active'");
      if (!r.empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  try {
    db::PipelinedTransaction t(*conn_);
    (void)t.Queue("test_sleep", {});
    (void)t.Commit();
    ADD_FAILURE() << "the commit returned on a terminated connection";
  } catch (const std::exception& e) {
    EXPECT_EQ(db::Classify(e), db::FailureKind::in_doubt) << e.what();
  }
  killer.join();
}

// A connection closed under a pipelined transaction, seen by libpq alone (no error from the
// server, so no SQLSTATE): through pqxx::pipeline that read as an ordinary failure, and pqxx
// would reopen the connection silently. Now a message carrying COMMIT is in doubt (here the
// server does commit it, after the sleep), one without is a lost connection, and either way
// the connection stays closed, so its owner opens a fresh one.
TEST_F(BusTest, APipelinedTransactionOnAConnectionClosedUnderItReportsItAndStaysClosed) {
  for (const bool commit : {true, false}) {
    auto conn = db::Connect(DatabaseUrl(), "test-closed");
    conn->prepare("test_sleep", "SELECT pg_sleep(0.5)");
    const int pid = conn->backendpid();
    const int socket = conn->sock();
    std::thread closer([pid, socket] {
      auto admin = db::Connect(DatabaseUrl(), "test-watch");
      for (int i = 0; i < 500; ++i) {  // until the sleep runs, then close the client's end
        const auto r = pqxx::nontransaction(*admin).exec(
            "SELECT 1 FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
            " AND query LIKE '%test_sleep%' AND state = 'active'");
        if (!r.empty()) {
          ::shutdown(socket, SHUT_RDWR);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    try {
      db::PipelinedTransaction t(*conn);
      (void)t.Queue("test_sleep", {});
      (void)(commit ? t.Commit() : t.Send());
      ADD_FAILURE() << "the message returned on a closed connection";
    } catch (const std::exception& e) {
      EXPECT_EQ(db::Classify(e), commit ? db::FailureKind::in_doubt : db::FailureKind::connection_lost) << e.what();
    }
    closer.join();
    EXPECT_FALSE(conn->is_open()) << "the connection was reopened behind its owner's back";
    EXPECT_THROW(pqxx::nontransaction(*conn).exec("SELECT 1"), pqxx::broken_connection);
  }
}

TEST_F(BusTest, BatchPublishKeepsOrder) {
  std::vector<bus::PublishRequest> requests;
  for (int i = 0; i < 500; ++i) requests.push_back(Message(R"({"i":)" + std::to_string(i) + "}"));
  const auto published = bus_->PublishBatch(requests);
  ASSERT_EQ(published.size(), requests.size());
  for (size_t i = 0; i < published.size(); ++i) {
    ASSERT_TRUE(published[i].created);
    EXPECT_EQ(ScalarText("SELECT payload->>'i' FROM agent_messages WHERE id = " +
                         std::to_string(published[i].id)),
              std::to_string(i));
    if (i > 20) break;  // spot-check the mapping; the count below covers the rest
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(DISTINCT payload->>'i') FROM agent_messages"), 500);
}

struct BadInputCase {
  std::string name;
  std::function<void(bus::PublishRequest&)> mutate;
  std::string reason;
};

TEST_F(BusTest, BadInputIsRejectedAndWritesNothing) {
  const std::vector<BadInputCase> cases = {
      {"invalid json", [](auto& r) { r.payload_json = "{not json"; }, "invalid_json"},
      {"truncated json", [](auto& r) { r.payload_json = R"({"a":)"; }, "invalid_json"},
      {"empty payload", [](auto& r) { r.payload_json = ""; }, "invalid_json"},
      {"array payload", [](auto& r) { r.payload_json = "[1,2]"; }, "payload_not_object"},
      {"scalar payload", [](auto& r) { r.payload_json = "42"; }, "payload_not_object"},
      {"empty service", [](auto& r) { r.service = ""; }, "empty_service"},
      {"blank role", [](auto& r) { r.role = "  "; }, "empty_role"},
      // Its wake-up "a/b/echo/0" could not be read back: its workers would never be woken.
      {"slash in service", [](auto& r) { r.service = "a/b"; }, "invalid_route_name"},
      {"slash in role", [](auto& r) { r.role = "echo/"; }, "invalid_route_name"},
      {"empty tenant", [](auto& r) { r.tenant = ""; }, "empty_tenant"},
      {"negative shard", [](auto& r) { r.shard = -1; }, "negative_shard"},
      {"zero attempts", [](auto& r) { r.max_attempts = 0; }, "bad_max_attempts"},
      {"oversize", [](auto& r) { r.payload_json = R"({"x":")" + std::string(1 << 20, 'a') + "\"}"; },
       "payload_too_large"},
      // jsonb cannot store a NUL: the insert would fail, and every message of its statement with it.
      {"nul in a string", [](auto& r) { r.payload_json = R"({"a":"x\u0000y"})"; }, "nul_character"},
      {"nul in a key", [](auto& r) { r.payload_json = R"({"\u0000":1})"; }, "nul_character"},
  };
  for (const auto& c : cases) {
    auto request = Message();
    c.mutate(request);
    try {
      (void)bus_->Publish(request);
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const bus::InvalidMessage& e) {
      EXPECT_EQ(e.rejection().reason, c.reason) << c.name;
    }
    // One bad message spoils its whole batch: nothing of it is written.
    EXPECT_THROW((void)bus_->PublishBatch({Message(), request}), bus::InvalidMessage) << c.name;
  }
  EXPECT_THROW((void)bus_->PublishBatch(std::vector<bus::PublishRequest>(10001, Message())),
               bus::InvalidMessage);
  // An escaped backslash followed by the text u0000 is no NUL.
  EXPECT_FALSE(bus::Validate(Message(R"({"path":"C:\\u0000"})"), bus::BusLimits{}).has_value());
  // A row written by SQL meets the same rule (sql/018's CHECK).
  for (const char* route : {"'a/b', 'echo'", "'test', 'echo/2'"}) {
    EXPECT_THROW(pqxx::nontransaction(*conn_).exec(
                     std::string("INSERT INTO agent_messages (service, role, tenant, payload) VALUES (") +
                     route + ", 't', '{}')"),
                 pqxx::check_violation)
        << route;
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events"), 0);
}

TEST_F(BusTest, ClaimTakesPriorityThenAgeAndSkipsDelayedAndOtherRoutes) {
  auto low = Message(R"({"p":"low"})");
  auto high = Message(R"({"p":"high"})");
  high.priority = 5;
  auto delayed = Message(R"({"p":"delayed"})");
  delayed.priority = 9;
  delayed.delay_ms = 300;
  auto other_shard = Message(R"({"p":"shard1"})");
  other_shard.shard = 1;
  const auto ids = bus_->PublishBatch({low, high, delayed, other_shard,
                                       Message("{}", "test", "other"), Message("{}", "x", "echo")});
  auto claimed = bus_->Claim(ClaimOn("w", 10));
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].lease.message_id, ids[1].id);  // high first
  EXPECT_EQ(claimed[1].lease.message_id, ids[0].id);

  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  claimed = bus_->Claim(ClaimOn("w", 10));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].lease.message_id, ids[2].id);

  auto shard_claim = ClaimOn("w", 10);
  shard_claim.shards = {1, 2};
  claimed = bus_->Claim(shard_claim);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].route.shard, 1);
}

// Delayed messages wait outside the claim's scan (sql/022); once due, one joins the queue by
// priority, then age, like any other; the claim clears its retry_at, so a release makes it ready.
TEST_F(BusTest, ADueDelayedMessageIsClaimedByPriorityThenAgeAndTheClaimClearsItsRetryAt) {
  auto old = Message(R"({"p":"old"})");
  old.delay_ms = 300;
  auto next_hour = Message(R"({"p":"next hour"})");
  next_hour.delay_ms = 3'600'000;
  next_hour.priority = 9;
  auto urgent = Message(R"({"p":"urgent"})");
  urgent.delay_ms = 300;
  urgent.priority = 5;
  const auto old_id = bus_->Publish(old).id;
  const auto next_hour_id = bus_->Publish(next_hour).id;
  const auto ready_id = bus_->Publish(Message(R"({"p":"ready"})")).id;
  const auto urgent_id = bus_->Publish(urgent).id;
  ASSERT_TRUE(WaitFor([&] {
    return Scalar<bool>("SELECT bool_and(retry_at <= now()) FROM agent_messages WHERE id IN (" +
                        std::to_string(old_id) + ", " + std::to_string(urgent_id) + ")");
  }));

  const auto claimed = bus_->Claim(ClaimOn("w", 10));
  ASSERT_EQ(claimed.size(), 3u) << "never the message due in an hour";
  EXPECT_EQ(claimed[0].lease.message_id, urgent_id);
  EXPECT_EQ(claimed[1].lease.message_id, old_id) << "older than the ready message";
  EXPECT_EQ(claimed[2].lease.message_id, ready_id);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'running' AND retry_at IS NOT NULL"), 0);
  EXPECT_EQ(Status(next_hour_id), "queued");

  ASSERT_TRUE(bus_->Release(claimed[1].lease));
  const auto again = bus_->Claim(ClaimOn("w", 10));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].lease.message_id, old_id);
}

TEST_F(BusTest, ConcurrentClaimersNeverShareAMessage) {
  std::vector<bus::PublishRequest> requests(400, Message());
  (void)bus_->PublishBatch(requests);
  std::vector<std::vector<int64_t>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &seen] {
      pqxx::connection conn(DatabaseUrl());
      bus::Bus bus(conn);
      while (true) {
        auto claimed = bus.Claim(ClaimOn("w" + std::to_string(t), 7));
        if (claimed.empty()) break;
        for (auto& m : claimed) seen[t].push_back(m.lease.message_id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<int64_t> all;
  for (auto& s : seen) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), 400u);
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
}

TEST_F(BusTest, OnlyTheLeaseHolderMayFinishAMessage) {
  const auto id = bus_->Publish(Message()).id;
  const auto lease = bus_->Claim(ClaimOn("owner")).at(0).lease;

  bus::Lease stranger = lease;
  stranger.owner = "stranger";
  EXPECT_FALSE(bus_->Complete({stranger, "", "", ""}));
  EXPECT_EQ(bus_->Fail({stranger, "x", FailureKind::permanent, 0}), FailOutcome::lease_lost);
  EXPECT_FALSE(bus_->Release(stranger));
  bus::Lease stale = lease;
  stale.fence = 0;
  EXPECT_FALSE(bus_->Complete({stale, "", "", ""}));
  EXPECT_EQ(Status(id), "running");

  ASSERT_TRUE(bus_->Complete({lease, "", "", ""}));
  EXPECT_FALSE(bus_->Complete({lease, "", "", ""})) << "double completion";
  EXPECT_EQ(bus_->Fail({lease, "late", FailureKind::retryable, 0}), FailOutcome::lease_lost);
  EXPECT_EQ(Trail(id), "claimed completed");
}

TEST_F(BusTest, RetryableFailureRequeuesWithBackoffThenDeadLetters) {
  auto request = Message();
  request.max_attempts = 2;
  const auto id = bus_->Publish(request).id;

  auto lease = bus_->Claim(ClaimOn("w")).at(0).lease;
  // The backoff is judged against the failure's own database time, not a later statement's now():
  // under load the next statement may come hundreds of milliseconds later.
  EXPECT_EQ(bus_->Fail({lease, "boom 1", FailureKind::retryable, 1000}), FailOutcome::requeued);
  EXPECT_EQ(Status(id), "queued");
  EXPECT_EQ(ScalarText("SELECT last_error FROM agent_messages"), "boom 1");
  EXPECT_TRUE(Scalar<bool>("SELECT retry_at = last_error_at + interval '1000 ms' FROM agent_messages"));
  EXPECT_TRUE(bus_->Claim(ClaimOn("w")).empty()) << "not before retry_at";

  ASSERT_TRUE(WaitFor([&] { return Scalar<bool>("SELECT retry_at <= now() FROM agent_messages"); }));
  lease = bus_->Claim(ClaimOn("w")).at(0).lease;
  EXPECT_EQ(lease.attempt, 2);
  EXPECT_EQ(bus_->Fail({lease, "boom 2", FailureKind::retryable, 200}), FailOutcome::dead_lettered);
  EXPECT_EQ(Status(id), "dead");
  EXPECT_EQ(Trail(id), "claimed retry_scheduled claimed dead_lettered");
}

TEST_F(BusTest, PermanentFailureFailsAtOnce) {
  const auto id = bus_->Publish(Message()).id;
  const auto lease = bus_->Claim(ClaimOn("w")).at(0).lease;
  EXPECT_EQ(bus_->Fail({lease, "model_not_allowed", FailureKind::permanent, 0}), FailOutcome::failed);
  EXPECT_EQ(Status(id), "failed");
  EXPECT_EQ(Trail(id), "claimed failed");
  EXPECT_EQ(ScalarText("SELECT detail->>'error' FROM bus_events WHERE event = 'failed'"),
            "model_not_allowed");
}

TEST_F(BusTest, ReclaimRequeuesExpiredLeasesAndFencesTheOldOwner) {
  const auto id = bus_->Publish(Message()).id;
  const auto old_lease = bus_->Claim(ClaimOn("slow", 1, 50)).at(0).lease;
  EXPECT_EQ(bus_->Reclaim(100).requeued, 0) << "lease not yet expired";
  std::this_thread::sleep_for(std::chrono::milliseconds(80));

  EXPECT_TRUE(bus_->Heartbeat({old_lease}, 30000).at(0))
      << "an expired but unreclaimed lease can still be renewed";
  // Renewed: expire it again, for real this time.
  pqxx::nontransaction(*conn_).exec("UPDATE agent_messages SET lease_expires_at = now() - interval '1 s'");
  const auto counts = bus_->Reclaim(100);
  EXPECT_EQ(counts.requeued, 1);
  EXPECT_EQ(Status(id), "queued");
  EXPECT_FALSE(bus_->Heartbeat({old_lease}, 30000).at(0));

  EXPECT_FALSE(bus_->Complete({old_lease, "", "", ""})) << "complete after reclaim";
  EXPECT_EQ(bus_->Fail({old_lease, "x", FailureKind::retryable, 0}), FailOutcome::lease_lost)
      << "fail after reclaim";

  const auto new_lease = bus_->Claim(ClaimOn("fast")).at(0).lease;
  EXPECT_EQ(new_lease.attempt, 2);
  EXPECT_FALSE(bus_->Complete({old_lease, "", "", ""})) << "old owner, re-claimed message";
  EXPECT_TRUE(bus_->Complete({new_lease, "", "", ""}));
  EXPECT_EQ(Trail(id), "claimed reclaimed claimed completed");
}

// A claim's time is read once its snapshot is taken, so everything the claim saw committed (here
// the reclaim that queued the message again) is earlier on the trail. now() would be the start
// of the claim's transaction: before its plan was made (at Bind), or, as here, a statement
// earlier in a transaction opened before the reclaim committed.
TEST_F(BusTest, AClaimReadsOnTheTrailAfterEverythingItSawCommitted) {
  const auto id = bus_->Publish(Message()).id;
  ASSERT_EQ(bus_->Claim(ClaimOn("lost")).size(), 1u);
  pqxx::nontransaction(*conn_).exec("UPDATE agent_messages SET lease_expires_at = now() - interval '1 s'");
  pqxx::connection claim_conn(DatabaseUrl());
  bus::Bus claimer(claim_conn);  // registers the bus's statements on its connection
  pqxx::work txn(claim_conn);
  txn.exec("SELECT 1");  // the transaction's now() is taken here
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(bus_->Reclaim(10).requeued, 1);
  // The bus's claim statement (bus/statements.h, kClaimName), in that transaction.
  const pqxx::result claimed = txn.exec_prepared("cogo_claim", "test", "echo", "{0}", 1, "second", 30000);
  ASSERT_EQ(claimed.size(), 1u);
  const double claimed_at = claimed[0][11].as<double>();
  txn.commit();
  EXPECT_EQ(Trail(id), "claimed reclaimed claimed");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages m, bus_events e WHERE e.message_id = m.id "
                            "AND e.event = 'reclaimed' AND m.started_at > e.at AND m.lease_expires_at = m.started_at + interval '30 s' "
                            "AND abs(extract(epoch FROM m.started_at) - " + std::to_string(claimed_at) + ") < 0.001"),
            1)
      << "the claim's time, its lease's start and the claimed_at it returns are one instant, after the reclaim";
}

TEST_F(BusTest, ReclaimDeadLettersAtMaxAttempts) {
  auto request = Message();
  request.max_attempts = 1;
  const auto id = bus_->Publish(request).id;
  (void)bus_->Claim(ClaimOn("w", 1, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto counts = bus_->Reclaim(100);
  EXPECT_EQ(counts.dead_lettered, 1);
  EXPECT_EQ(Status(id), "dead");
  EXPECT_EQ(Trail(id), "claimed dead_lettered");
}

TEST_F(BusTest, ReleaseGivesBackWithoutCountingAnAttempt) {
  const auto id = bus_->Publish(Message()).id;
  const auto lease = bus_->Claim(ClaimOn("w")).at(0).lease;
  ASSERT_TRUE(bus_->Release(lease));
  EXPECT_EQ(Status(id), "queued");
  EXPECT_EQ(Scalar<int>("SELECT attempts FROM agent_messages"), 0);
  EXPECT_FALSE(bus_->Release(lease)) << "released twice";
  EXPECT_EQ(bus_->Claim(ClaimOn("w")).at(0).lease.attempt, 1);
  EXPECT_EQ(Trail(id), "claimed released claimed");
}

TEST_F(BusTest, CancelStopsQueuedAndRunningMessages) {
  const auto queued = bus_->Publish(Message()).id;
  ASSERT_TRUE(bus_->Cancel(queued, "user asked"));
  EXPECT_EQ(Status(queued), "cancelled");
  EXPECT_FALSE(bus_->Cancel(queued, "again"));
  EXPECT_TRUE(bus_->Claim(ClaimOn("w")).empty());

  const auto running = bus_->Publish(Message()).id;
  const auto lease = bus_->Claim(ClaimOn("w")).at(0).lease;
  ASSERT_TRUE(bus_->Cancel(running, "user asked"));
  EXPECT_FALSE(bus_->Complete({lease, "", "", ""})) << "complete after cancel";
  EXPECT_EQ(Trail(running), "claimed cancelled");
}

// attempts is the retry budget and goes down (release) or back to 0 (operator retry); the fence
// only rises, so a stale claim by the same owner with the same attempt number is still refused.
TEST_F(BusTest, TheFenceRisesWithEveryClaimAndNothingLowersIt) {
  const auto id = bus_->Publish(Message()).id;
  const auto first = bus_->Claim(ClaimOn("w")).at(0).lease;
  EXPECT_EQ(first.attempt, 1);
  EXPECT_EQ(first.fence, 1);
  ASSERT_TRUE(bus_->Release(first));
  const auto second = bus_->Claim(ClaimOn("w")).at(0).lease;
  EXPECT_EQ(second.attempt, 1) << "a release gives the attempt back";
  EXPECT_EQ(second.fence, 2);
  ASSERT_TRUE(bus_->Cancel(id, "operator"));
  ASSERT_TRUE(bus_->Retry(id));
  const auto third = bus_->Claim(ClaimOn("w")).at(0).lease;
  EXPECT_EQ(third.attempt, 1) << "an operator retry starts the budget afresh";
  EXPECT_EQ(third.fence, 3);

  for (const auto& stale : {first, second}) {
    EXPECT_FALSE(bus_->Complete({stale, "", "", ""}));
    EXPECT_EQ(bus_->Fail({stale, "x", FailureKind::retryable, 0}), FailOutcome::lease_lost);
    EXPECT_FALSE(bus_->Release(stale));
    EXPECT_FALSE(bus_->Heartbeat({stale}, 30000).at(0));
  }
  {
    pqxx::work txn(*conn_);
    EXPECT_EQ(bus_->LockLeases(txn, {second, third}), (std::vector<bool>{false, true}));
  }
  EXPECT_EQ(bus_->Heartbeat({second, third}, 30000), (std::vector<bool>{false, true}));
  EXPECT_EQ(bus_->CompleteBatch({{second, "", "", ""}, {third, "", "", ""}}),
            (std::vector<bool>{false, true}))
      << "two claims of one message in one batch: only the latest counts";
  EXPECT_EQ(ScalarText("SELECT string_agg(detail->>'fence', ' ' ORDER BY at, ord, id) FROM bus_trail "
                       "WHERE event IN ('claimed', 'completed')"),
            "1 2 3 3");
}

TEST_F(BusTest, OperatorRetryAndBulkRequeueOfDeadLetters) {
  auto request = Message();
  request.max_attempts = 1;
  const auto ids = bus_->PublishBatch({request, request, request});
  for (int i = 0; i < 3; ++i) {
    const auto lease = bus_->Claim(ClaimOn("w")).at(0).lease;
    (void)bus_->Fail({lease, "boom", FailureKind::retryable, 0});
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'dead'"), 3);
  EXPECT_FALSE(bus_->Retry(999999));
  ASSERT_TRUE(bus_->Retry(ids[0].id));
  EXPECT_EQ(Status(ids[0].id), "queued");
  EXPECT_FALSE(bus_->Retry(ids[0].id)) << "a queued message is not retried";
  EXPECT_EQ(bus_->RequeueDead("other", ""), 0);
  EXPECT_EQ(bus_->RequeueDead("test", "echo"), 2);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'queued' AND attempts = 0"), 3);
  EXPECT_EQ(Trail(ids[1].id), "claimed dead_lettered retried");
}

TEST_F(BusTest, PublishAndCompleteShareTheCallersTransaction) {
  const auto lease = (bus_->Publish(Message()), bus_->Claim(ClaimOn("w")).at(0).lease);
  {
    pqxx::work txn(*conn_);
    (void)bus_->Publish(txn, Message("{}", "next", "step"));
    ASSERT_TRUE(bus_->Complete(txn, {lease, "", "", ""}));
    // No commit: both roll back together.
  }
  EXPECT_EQ(Status(lease.message_id), "running");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'next'"), 0);
  {
    pqxx::work txn(*conn_);
    (void)bus_->Publish(txn, Message("{}", "next", "step"));
    ASSERT_TRUE(bus_->Complete(txn, {lease, "", "", ""}));
    txn.commit();
  }
  EXPECT_EQ(Status(lease.message_id), "done");
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE service = 'next'"), 1);
}

}  // namespace
}  // namespace cogo::testing
