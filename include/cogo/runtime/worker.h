// Worker: consumes one route with a handler. A claimer thread claims in batches up to free
// capacity, `concurrency` handler threads run the handler, and a flusher thread commits
// outcomes in batches, heartbeats leases and keeps the registry row fresh. The claimer and the
// flusher each have their own connection; on a route at a trickle, a handler that finishes
// while no other runs or waits commits its outcome itself on the flusher's, lent while the
// flusher sleeps. Public methods are thread-safe. Drain() is the graceful stop: no new claims,
// running handlers get the grace period; claimed messages no handler started are released to
// the queue, and a handler still running when the grace runs out fails its attempt as
// retryable with the reason drain_timeout (counted: one that always hangs is dead-lettered).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/base/clock.h"
#include "cogo/policy/backoff.h"
#include "cogo/runtime/guards.h"
#include "cogo/runtime/handler.h"

namespace cogo::wake {
class WakeHub;
}
namespace cogo::metrics {
class BusMetrics;
}

namespace cogo::runtime {

struct WorkerOptions {
  std::string database_url;
  std::string service;
  std::string role;
  std::vector<int> shards{0};
  int concurrency = 4;                          // handler threads
  int batch_size = 32;                          // most messages one claim takes
  std::chrono::milliseconds lease{30000};       // lease length; heartbeats renew it
  std::chrono::milliseconds heartbeat{10000};   // how often leases and last_seen are renewed
  std::chrono::milliseconds poll{1000};         // claim at least this often when idle
  std::chrono::milliseconds drain_grace{30000};  // how long running handlers may finish
  policy::BackoffParams retry_backoff;          // delay before a retryable failure is retried
  // false: the flusher's commits do not wait for the WAL flush. For a route whose outcomes
  // nothing outside the bus acts on: whatever acts on them commits durably later in the WAL,
  // which flushes them first; a crash before that loses the outcome and its follow-ups together
  // and the message runs again.
  bool durable_outcomes = true;
  std::string worker_id;                        // empty: host-pid-route-random
  // Judges deadlines in-process; null: the real steady clock (tests inject a ManualClock).
  const base::Clock* clock = nullptr;
  GuardRules guards;  // runtime/guards.h
};

// A claim whose answer was lost with its connection may have committed, leasing messages to a
// worker that never saw them. After reconnecting, the claimer releases them unrun (attempt
// uncounted): at most `concurrency + batch_size` at a time, each tried at most this often; the
// rest are logged and left to the reclaimer, which requeues them when their lease expires.
inline constexpr int kOrphanReleaseTries = 3;

struct WorkerStats {
  uint64_t claimed = 0;
  uint64_t completed = 0;
  uint64_t retried = 0;
  uint64_t failed = 0;  // permanent failures and dead letters
  uint64_t released = 0;
  uint64_t lease_lost = 0;
  uint64_t flushes = 0;              // writes of finished attempts' outcomes (a batch each)
  uint64_t flushed_by_handlers = 0;  // of those, written by a handler that finished alone
};

class Worker {
 public:
  // `wake` may be null (poll only); `metrics` may be null. Both must outlive the worker.
  Worker(WorkerOptions options, Handler handler, wake::WakeHub* wake,
         std::shared_ptr<spdlog::logger> logger, metrics::BusMetrics* metrics = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();
  // Graceful stop; blocks until every claimed message is completed, failed or released.
  void Drain();

  // Ready: the claim and flush connections are open, the worker is registered, its WakeHub
  // LISTENs on its route's channel (when it has one) and the claimer has made its first claim and now waits for
  // work: a message published from now on is claimed without anyone polling for the worker.
  // Blocks up to `timeout`; false on timeout, or at once when the worker stopped (a fatal
  // error, a drain). Callers and benchmarks wait on this instead of sleeping or reading
  // pg_stat_activity.
  [[nodiscard]] bool WaitReady(std::chrono::milliseconds timeout) const;
  // The same, now: false again while a connection is being replaced.
  [[nodiscard]] bool ready() const;

  [[nodiscard]] const std::string& id() const;
  [[nodiscard]] WorkerStats stats() const;
  // Empty while healthy; else the first fatal error (the worker stopped claiming).
  [[nodiscard]] std::string fatal_error() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogo::runtime
