// End to end with the real binaries: exactly-once under contention across processes, a worker
// SIGKILLed mid-message, SIGTERM drains, and the CLI's answers to good and bad input.
#include <signal.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "child_process.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;

// "<id> <attempt>" lines written by cogo-test-worker --record, as id -> handler calls.
std::map<int64_t, int> HandlerCalls(const std::vector<std::string>& files) {
  std::map<int64_t, int> calls;
  for (const auto& file : files) {
    std::ifstream in(file);
    int64_t id = 0;
    int attempt = 0;
    while (in >> id >> attempt) ++calls[id];
  }
  return calls;
}

std::vector<std::string> WorkerArgs(const std::string& record, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--service", "test", "--role", "echo", "--record", record,
                                   "--poll-ms", "200"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST_F(BusTest, TwoWorkerProcessesCompleteTenThousandMessagesExactlyOnce) {
  constexpr int kMessages = 10000;
  for (int batch = 0; batch < kMessages / 1000; ++batch) {
    (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(1000, Message()));
  }
  const auto record_a = ScratchFile("a.rec");
  const auto record_b = ScratchFile("b.rec");
  const auto log = ScratchFile("workers.log");
  {
    ChildProcess a("cogo-test-worker", WorkerArgs(record_a, {"--concurrency", "4", "--batch-size", "16"}), log);
    ChildProcess b("cogo-test-worker", WorkerArgs(record_b, {"--concurrency", "4", "--batch-size", "16"}), log);
    ASSERT_TRUE(WaitFor([] {
      return Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'") == kMessages;
    }, 300s)) << "see " << log;
    a.Signal(SIGTERM);
    b.Signal(SIGTERM);
    EXPECT_EQ(a.Wait(30s), 0);
    EXPECT_EQ(b.Wait(30s), 0);
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status <> 'done'"), 0);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM bus_events WHERE event = 'completed'"), kMessages);
  EXPECT_EQ(Scalar<int64_t>("SELECT count(DISTINCT message_id) FROM bus_events WHERE event = 'completed'"),
            kMessages);
  const auto calls = HandlerCalls({record_a, record_b});
  EXPECT_EQ(calls.size(), static_cast<size_t>(kMessages));
  int ran_twice = 0;
  for (const auto& [id, n] : calls) ran_twice += n > 1 ? 1 : 0;
  EXPECT_EQ(ran_twice, 0) << "no crash happened, so no handler may run twice";
  // Both processes did real work.
  EXPECT_GT(HandlerCalls({record_a}).size(), 0u);
  EXPECT_GT(HandlerCalls({record_b}).size(), 0u);
}

TEST_F(BusTest, WorkerKilledMidMessageIsReclaimedAndCompletesOnce) {
  const auto id = bus_->Publish(Message()).id;
  const auto record_a = ScratchFile("killed.rec");
  const auto record_b = ScratchFile("survivor.rec");
  const auto log = ScratchFile("crash.log");
  {
    ChildProcess victim("cogo-test-worker",
                        WorkerArgs(record_a, {"--sleep-ms", "60000", "--lease-ms", "1000",
                                              "--heartbeat-ms", "300"}),
                        log);
    ASSERT_TRUE(WaitFor([&] { return HandlerCalls({record_a}).count(id) == 1; }, 30s));
    victim.Signal(SIGKILL);
    EXPECT_EQ(victim.Wait(10s), 128 + SIGKILL);
  }
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages"), "running");
  // The lease runs out (no heartbeat any more); then the reclaimer requeues the message.
  ASSERT_TRUE(WaitFor([&] { return bus_->Reclaim(100).requeued == 1; }, 10s));
  {
    ChildProcess survivor("cogo-test-worker", WorkerArgs(record_b), log);
    ASSERT_TRUE(WaitFor([] { return ScalarText("SELECT status FROM agent_messages") == "done"; }, 30s));
    survivor.Signal(SIGTERM);
    EXPECT_EQ(survivor.Wait(30s), 0);
  }
  EXPECT_EQ(Trail(id), "claimed reclaimed claimed completed");
  EXPECT_EQ(HandlerCalls({record_b}).at(id), 1);
  EXPECT_EQ(Scalar<int>("SELECT attempts FROM agent_messages"), 2);
}

TEST_F(BusTest, FirstSigtermDrainsSecondExitsAtOnce) {
  (void)bus_->PublishBatch(std::vector<bus::PublishRequest>(3, Message()));
  const auto record = ScratchFile("drain.rec");
  const auto log = ScratchFile("drain.log");
  {
    ChildProcess worker("cogo-test-worker",
                        WorkerArgs(record, {"--sleep-ms", "1500", "--concurrency", "1", "--batch-size", "1"}),
                        log);
    ASSERT_TRUE(WaitFor([&] { return HandlerCalls({record}).size() == 1; }, 30s));
    worker.Signal(SIGTERM);
    EXPECT_EQ(worker.Wait(30s), 0);
  }
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'done'"), 1)
      << "the running message finished";
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages WHERE status = 'queued' AND attempts = 0"), 2)
      << "nothing else was claimed, or it was given back";
  EXPECT_EQ(HandlerCalls({record}).size(), 1u);

  {
    ChildProcess worker("cogo-test-worker",
                        WorkerArgs(record, {"--sleep-ms", "60000", "--concurrency", "1", "--batch-size", "1"}),
                        log);
    ASSERT_TRUE(WaitFor([&] { return HandlerCalls({record}).size() == 2; }, 30s));
    worker.Signal(SIGTERM);
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(worker.Wait(0ms).has_value()) << "still draining";
    worker.Signal(SIGTERM);
    EXPECT_EQ(worker.Wait(5s), 1) << "a second SIGTERM exits promptly";
  }
}

TEST_F(BusTest, CliPublishesGoodInputAndRefusesBadInput) {
  auto good = RunCommand("cogo", {"publish", "--service", "test", "--role", "echo", "--tenant", "t",
                                  R"({"hello":"world"})"});
  EXPECT_EQ(good.status, 0) << good.output;
  EXPECT_NE(good.output.find(R"("created":true)"), std::string::npos) << good.output;

  struct Case {
    std::vector<std::string> args;
    std::string stdin_text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--service", "test", "--role", "echo", "--tenant", "t", "{oops"}, "", "invalid_json"},
      {{"--service", "", "--role", "echo", "--tenant", "t", "{}"}, "", "empty_service"},
      {{"--service", "test", "--role", " ", "--tenant", "t", "{}"}, "", "empty_role"},
      {{"--service", "te/st", "--role", "echo", "--tenant", "t", "{}"}, "", "invalid_route_name"},
      {{"--service", "test", "--role", "echo", "--tenant", "", "{}"}, "", "empty_tenant"},
      {{"--service", "test", "--role", "echo", "--tenant", "t", "[1]"}, "", "payload_not_object"},
      {{"--service", "test", "--role", "echo", "--tenant", "t", "-"},
       R"({"big":")" + std::string(2 << 20, 'x') + "\"}", "payload_too_large"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"publish"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto result = RunCommand("cogo", args, c.stdin_text);
    EXPECT_EQ(result.status, 2) << c.expected << ": " << result.output;
    EXPECT_NE(result.output.find(c.expected), std::string::npos) << result.output;
  }
  const auto missing = RunCommand("cogo", {"publish", "--role", "echo", "--tenant", "t", "{}"});
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.output.find("--service"), std::string::npos) << missing.output;
  EXPECT_EQ(Scalar<int64_t>("SELECT count(*) FROM agent_messages"), 1) << "only the good one";

  const auto inspect = RunCommand("cogo", {"inspect", "1"});
  EXPECT_EQ(inspect.status, 0);
  EXPECT_NE(inspect.output.find("\"hello\""), std::string::npos);
  EXPECT_EQ(RunCommand("cogo", {"inspect", "999"}).status, 2);
  EXPECT_EQ(RunCommand("cogo", {"retry", "1"}).status, 1) << "a queued message cannot be retried";
  const auto status = RunCommand("cogo", {"status"});
  EXPECT_EQ(status.status, 0);
  EXPECT_NE(status.output.find("\"queued\""), std::string::npos) << status.output;
}

}  // namespace
}  // namespace cogo::testing
