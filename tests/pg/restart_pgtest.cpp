// Failure: PostgreSQL restarts under a running worker process. Every connection of the worker
// (claim, flush, LISTEN) breaks; it must reconnect on its own, and every message must still end
// done with exactly one completion.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "child_process.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;

// Restarts the test cluster (scripts/cogo-dev test exports where it lives).
void RestartPostgres() {
  const char* bin = std::getenv("COGO_TEST_PG_BIN");
  const char* data = std::getenv("COGO_TEST_PG_DATA");
  ASSERT_TRUE(bin != nullptr && data != nullptr)
      << "COGO_TEST_PG_BIN / COGO_TEST_PG_DATA unset: run the tests with scripts/cogo-dev test";
  const std::string as_owner = getuid() == 0 ? "runuser -u postgres -- " : "";
  const std::string command = as_owner + bin + "/pg_ctl -D " + data + " -m fast -w -t 60 restart > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

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

}  // namespace
}  // namespace cogo::testing
