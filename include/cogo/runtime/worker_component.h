// The glue between a Worker and RunDaemon: worker flags every worker daemon shares, a
// Component that runs one Worker, and WorkerDaemon: the DaemonSpec of a daemon that runs one worker (their
// main is their defaults, their own flags and how their handler is built). Thread-safety as
// Worker.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cogo/runtime/daemon.h"
#include "cogo/runtime/worker.h"

namespace cogo::runtime {

// --shards, --concurrency, --batch-size, --lease-ms, --heartbeat-ms (and --service/--role
// when `with_route`; daemons with a fixed route pass false).
void AddWorkerOptions(CLI::App& app, WorkerOptions& options, bool with_route);

// Fills the database URL, poll interval and drain grace from the common options.
[[nodiscard]] std::unique_ptr<Component> MakeWorkerComponent(WorkerOptions options,
                                                             Handler handler,
                                                             DaemonContext& context);

struct WorkerDaemonSpec {
  std::string name;
  std::string description;
  WorkerOptions& worker;  // the daemon's defaults (route, guards); the worker flags fill the rest
  bool with_route = false;  // --service/--role are flags (else the route is fixed)
  std::function<void(CLI::App&)> add_options;  // the daemon's own flags; may be empty
  // Builds the handler once options are parsed; may still adjust `worker`.
  std::function<Handler(DaemonContext&)> make_handler;
};

// The DaemonSpec of a daemon with one component: the worker, running the handler
// `make_handler` builds (a main may wrap it, e.g. with http::WithHealthListener).
[[nodiscard]] DaemonSpec WorkerDaemon(WorkerDaemonSpec spec);

}  // namespace cogo::runtime
