// RunDaemon: what every cogo executable shares — configuration (flags, a TOML config file
// that rejects unknown keys, COGO_* environment variables), logging, the process's WakeHub
// and metrics endpoint, signals and exit codes. A daemon's main only describes its components.
// Signal model: TERM/INT/QUIT/HUP are blocked before any thread starts and taken with sigwait
// on the main thread; the first TERM/INT drains (components in reverse order), a second exits
// at once; HUP is logged. A component reporting a fatal error stops the daemon with exit 1.
// Readiness: once every component is ready (Component::WaitReady: a worker is connected,
// listening and waiting for work) the daemon logs "<name> ready" and tells systemd READY=1.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

namespace CLI {
class App;
}
namespace prometheus {
class Registry;
}

namespace cogo::wake {
class WakeHub;
}
namespace cogo::metrics {
class BusMetrics;
}

namespace cogo::runtime {

struct CommonOptions {
  std::string database_url = "postgresql://postgres@127.0.0.1:55432/cogo";  // COGO_DATABASE_URL
  std::string log_format = "text";      // COGO_LOG_FORMAT: text | json
  std::string log_level = "info";       // COGO_LOG_LEVEL
  std::string metrics_listen;           // COGO_METRICS_LISTEN, host:port; empty = off
  bool notify = true;                   // COGO_NOTIFY: LISTEN for wake-ups (else poll only)
  int poll_ms = 1000;                   // COGO_POLL_MS: claim at least this often when idle
  int drain_grace_ms = 30000;           // COGO_DRAIN_GRACE_MS
};

// Adds the common options to `app` (also used by the `cogo` CLI for --database-url).
void AddCommonOptions(CLI::App& app, CommonOptions& options);

class Component {
 public:
  virtual ~Component() = default;
  virtual void Start() = 0;
  virtual void Drain() = 0;  // graceful stop; returns when done
  // Empty while healthy; else why the component cannot go on.
  [[nodiscard]] virtual std::string FatalError() const { return {}; }
  // Blocks up to `timeout` until the component serves (a worker: Worker::WaitReady); false if
  // it does not yet. RunDaemon tells systemd READY=1 once every component is ready.
  [[nodiscard]] virtual bool WaitReady(std::chrono::milliseconds /*timeout*/) const { return true; }
};

struct DaemonContext {
  const CommonOptions& options;
  std::shared_ptr<spdlog::logger> logger;
  wake::WakeHub* wake;  // null when notifications are off
  metrics::BusMetrics& metrics;
  prometheus::Registry& registry;
};

struct DaemonSpec {
  std::string name;
  std::string description;
  std::function<void(CLI::App&)> add_options;  // the daemon's own flags
  std::function<std::vector<std::unique_ptr<Component>>(DaemonContext&)> build;
};

// Parses the command line, builds and runs the components until a signal; returns the exit code.
int RunDaemon(int argc, char** argv, const DaemonSpec& spec);

}  // namespace cogo::runtime
