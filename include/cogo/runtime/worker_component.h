// The glue between a Worker and RunDaemon: worker flags every worker daemon shares, and a
// Component that runs one Worker. Thread-safety as Worker.
#pragma once

#include <memory>

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

}  // namespace cogo::runtime
