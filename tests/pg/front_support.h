// Test support for the front daemons (edge, brain, gateway-chat): ports read back, a started daemon
// that waits for /healthz and stops with SIGTERM, JSON HTTP calls, dev tokens, and the real
// executor daemon. Not thread-safe; one owner per object.
#pragma once

#include <chrono>
#include <ios>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "child_process.h"

namespace cogo::runtime {
class Worker;
}

namespace cogo::testing {

inline constexpr const char* kTestJwtSecret = "test-secret-0123456789abcdef0123456789";
inline constexpr const char* kTestPublishableKey = "pk_test_publishable";

[[nodiscard]] std::string SourcePath(const std::string& relative);  // under the source tree
[[nodiscard]] std::string ReadFile(const std::string& path);  // empty when unreadable

struct HttpResult {
  int status = 0;  // 0: no HTTP answer
  std::string body;
  std::map<std::string, std::string> headers;
};

HttpResult HttpPost(int port, const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers = {});
HttpResult HttpGet(int port, const std::string& path,
                   const std::map<std::string, std::string>& headers = {});

// A refusal as every cogo HTTP server sends it: `status`, a JSON body `{error, message}` with
// this `error` and a message, and never the test JWT secret. `name` labels failures.
void ExpectJsonError(const HttpResult& r, int status, const std::string& error, const std::string& name);

// A daemon binary started with --port 0: the kernel picks a free port (a port chosen by the test
// could be taken by another process before the daemon binds it) and the daemon logs it as
// "http://HOST:PORT"; ready once /healthz answers there. SIGTERM + wait on destruction.
class Daemon {
 public:
  Daemon(const std::string& binary, std::vector<std::string> args, const std::string& log);
  ~Daemon();
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::string& log() const { return log_; }
  void Signal(int signal) { child_->Signal(signal); }
  [[nodiscard]] std::optional<int> Wait(std::chrono::milliseconds timeout) { return child_->Wait(timeout); }

 private:
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
  std::string log_;
};

// Where a daemon started now begins writing to `log` (0 when there is no log yet).
[[nodiscard]] std::streamoff LogSize(const std::string& log);

// The port of the metrics endpoint a daemon started with COGO_METRICS_LISTEN=HOST:0 logged after
// `offset` of `log` ("metrics http://HOST:PORT/metrics"); 0 until it has.
[[nodiscard]] int LoggedMetricsPort(const std::string& log, std::streamoff offset);

// A worker daemon (no HTTP): started, then SIGTERM + wait on destruction.
class WorkerDaemon {
 public:
  WorkerDaemon(const std::string& binary, std::vector<std::string> args, const std::string& log);
  ~WorkerDaemon();
  void Signal(int signal) { child_->Signal(signal); }

 private:
  std::unique_ptr<ChildProcess> child_;
};

// The real cogo-executor-dispatcher with the shipped policy example.
[[nodiscard]] std::unique_ptr<WorkerDaemon> StartExecutor(const std::string& log);

// Exports COGO_JWT_SECRET / COGO_PUBLISHABLE_KEY for the daemons this test spawns.
void ExportEdgeSecrets();

}  // namespace cogo::testing
