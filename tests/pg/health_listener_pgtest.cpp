// The daemons without an HTTP API of their own (workers, reclaimer, retention) over real
// processes: --health-port serves /healthz and /readyz (ready once the worker waits for work,
// 503 `workers_not_ready` from SIGTERM until the drain ends), and every daemon tells systemd READY=1 and STOPPING=1
// through $NOTIFY_SOCKET (deploy/systemd/cogo@.service is Type=notify).
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <regex>

#include <nlohmann/json.hpp>

#include "child_process.h"
#include "front_support.h"
#include "pg_fixture.h"

namespace cogo::testing {
namespace {

using namespace std::chrono_literals;

// The health listener's port, once the daemon has logged it; 0 before.
int HealthPort(const std::string& log) {
  static const std::regex kUrl(R"(-health listening on http://127\.0\.0\.1:([0-9]+))");
  std::smatch match;
  const std::string text = ReadFile(log);
  return std::regex_search(text, match, kUrl) ? std::stoi(match[1]) : 0;
}

// A datagram socket in the place of systemd's: what a daemon sends to $NOTIFY_SOCKET.
class NotifySocket {
 public:
  NotifySocket() : path_(ScratchFile("notify.sock")) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (fd_ < 0 || path_.size() >= sizeof(addr.sun_path) ||
        bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error("cannot bind " + path_);
    }
    const timeval wait{30, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  // The next datagram; empty after 30 s without one.
  std::string Next() {
    char buffer[512];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST_F(BusTest, AWorkerDaemonIsReadyOnItsHealthPortAndNotReadyUntilItsDrainEnds) {
  const auto log = ScratchFile("health-worker.log");
  ChildProcess worker("cogo-test-worker",
                      {"--service", "test", "--role", "health", "--sleep-ms", "2000", "--poll-ms", "100",
                       "--health-port", "0"},
                      log);
  int port = 0;
  ASSERT_TRUE(WaitFor([&] { return (port = HealthPort(log)) != 0; }, 30s)) << ReadFile(log);
  ASSERT_TRUE(WaitFor([&] { return HttpGet(port, "/readyz").status == 200; }, 30s)) << ReadFile(log);
  EXPECT_EQ(nlohmann::json::parse(HttpGet(port, "/readyz").body).value("status", ""), "ready");
  EXPECT_EQ(HttpGet(port, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(port, "/openapi.json").status, 404);  // a probe, not an API

  // SIGTERM while a handler runs: /readyz says not ready for as long as the drain lasts, the
  // handler finishes, and then the listener closes with the process.
  const int64_t id = bus_->Publish(Message("{}", "test", "health")).id;
  ASSERT_TRUE(WaitFor([&] {
    return ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)) == "running";
  }, 30s));
  worker.Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return HttpGet(port, "/readyz").status == 503; }, 5s)) << ReadFile(log);
  ExpectJsonError(HttpGet(port, "/readyz"), 503, "workers_not_ready", "a worker draining");
  EXPECT_EQ(HttpGet(port, "/healthz").status, 200);
  EXPECT_EQ(worker.Wait(30s), 0) << ReadFile(log);
  EXPECT_EQ(ScalarText("SELECT status FROM agent_messages WHERE id = " + std::to_string(id)), "done");
  EXPECT_EQ(HttpGet(port, "/healthz").status, 0);
}

TEST_F(BusTest, ADaemonTellsSystemdWhenItIsReadyAndWhenItStops) {
  NotifySocket systemd;
  const auto log = ScratchFile("health-reclaimer.log");
  setenv("NOTIFY_SOCKET", systemd.path().c_str(), 1);
  ChildProcess reclaimer("cogo-bus-reclaimer", {"--health-port", "0"}, log);
  unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(systemd.Next(), "READY=1") << ReadFile(log);
  const int port = HealthPort(log);  // logged before READY=1
  ASSERT_NE(port, 0) << ReadFile(log);
  EXPECT_EQ(HttpGet(port, "/readyz").status, 200) << ReadFile(log);
  reclaimer.Signal(SIGTERM);
  EXPECT_EQ(systemd.Next(), "STOPPING=1") << ReadFile(log);
  EXPECT_EQ(reclaimer.Wait(30s), 0) << ReadFile(log);
}

TEST_F(BusTest, NoHealthListenerUnlessAPortIsGiven) {
  const auto log = ScratchFile("health-none.log");
  NotifySocket systemd;
  setenv("NOTIFY_SOCKET", systemd.path().c_str(), 1);
  ChildProcess retention("cogo-bus-retention", {}, log);
  unsetenv("NOTIFY_SOCKET");
  ASSERT_EQ(systemd.Next(), "READY=1") << ReadFile(log);
  EXPECT_EQ(ReadFile(log).find("listening on"), std::string::npos) << ReadFile(log);
  retention.Signal(SIGTERM);
  EXPECT_EQ(retention.Wait(30s), 0) << ReadFile(log);
}

}  // namespace
}  // namespace cogo::testing
