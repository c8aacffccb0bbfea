// The reclaimer's pass: requeue (or dead-letter at max_attempts) running messages whose lease
// expired, and end queued messages whose assignment TTL already passed as failed with
// `ttl_expired` (and a `ttl_expired` event), both in bounded batches until nothing is left.
// Safe with several reclaimers at once (SKIP LOCKED; each row changes once). A pass uses the
// caller's connection, one thread at a time; the component runs passes on an interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>

#include <pqxx/connection>

#include "cogo/runtime/daemon.h"

namespace CLI {
class App;
}

namespace cogo::ops {

struct ReclaimerOptions {
  int batch_size = 500;                      // rows per statement (one short transaction each)
  std::chrono::milliseconds interval{5000};  // daemon: from one pass to the next
  bool expire_ttl = true;                    // also end queued rows past their TTL
};

struct ReclaimReport {
  int64_t requeued = 0;
  int64_t dead_lettered = 0;
  int64_t ttl_expired = 0;
  int statements = 0;  // batches run

  [[nodiscard]] bool empty() const { return requeued + dead_lettered + ttl_expired == 0; }
};

// One batch of TTL expiry; returns how many rows it ended.
[[nodiscard]] int64_t ExpireQueuedTtl(pqxx::connection& conn, int limit);

// Everything due now, batch after batch, until a batch comes back short or stop is requested.
[[nodiscard]] ReclaimReport ReclaimPass(pqxx::connection& conn, const ReclaimerOptions& options,
                                        std::stop_token stop = {});

// --batch-size, --interval (a duration, e.g. 5s), --expire-ttl.
void AddReclaimerOptions(CLI::App& app, ReclaimerOptions& options);

// The daemon component (a runtime::PeriodicTask); logs each pass that changed something.
[[nodiscard]] std::unique_ptr<runtime::Component> MakeReclaimerComponent(
    ReclaimerOptions options, runtime::DaemonContext& context);

}  // namespace cogo::ops
