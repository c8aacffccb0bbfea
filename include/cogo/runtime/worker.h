// Worker: consumes one route with a handler. A claimer thread claims in batches up to free
// capacity, `concurrency` handler threads run the handler, and a flusher thread commits
// outcomes in batches, heartbeats leases and keeps the registry row fresh. Each thread has its
// own connection. Public methods are thread-safe. Drain() is the graceful stop: no new claims,
// running handlers get the grace period; claimed messages no handler started are released to
// the queue, and a handler still running when the grace runs out fails its attempt as
// retryable with the reason drain_timeout (counted: one that always hangs is dead-lettered).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cogo/bus/message.h"
#include "cogo/policy/assignment.h"
#include "cogo/policy/backoff.h"
#include "cogo/policy/metering.h"

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
  std::string worker_id;                        // empty: host-pid-route-random
  // Guards. A message whose payload carries `__assignment` always has it enforced: invalid ->
  // assignment_invalid, a model outside `served_models` (when not empty) -> model_not_served,
  // past its TTL -> ttl_exceeded, over budget -> budget_exceeded; all permanent failures.
  std::vector<std::string> served_models;  // empty: any model
  bool require_assignment = false;         // true: a payload without one is assignment_missing
  // false: the handler judges `__assignment` itself and none of the guards above run (the
  // executor, whose admission check reports ttl_expired etc. with its own audit events).
  bool enforce_assignment = true;
};

// Meters what one message's handler spends against its assignment's budget. Crossing a limit
// requests the handler's stop token; the message then fails with budget_exceeded and the usage
// actually spent is recorded. Thread-safe: a handler may report from several threads.
class UsageGuard {
 public:
  UsageGuard(std::optional<policy::Budget> budget, std::stop_source stop);
  // Adds a report (tokens, and cost already priced); returns the verdict on the new total.
  policy::MeterVerdict Report(const policy::Usage& usage);
  [[nodiscard]] policy::Usage total() const;
  [[nodiscard]] policy::MeterVerdict verdict() const;
  [[nodiscard]] bool reported() const;

 private:
  mutable std::mutex mu_;
  std::optional<policy::UsageMeter> meter_;  // absent: no budget, usage is only recorded
  policy::Usage unmetered_;
  bool reported_ = false;
  std::stop_source stop_;
};

struct HandlerContext {
  const bus::ClaimedMessage& message;  // message.lease is this claim
  // Requested when the lease is lost, the deadline passes, the budget is exceeded or the
  // drain grace ran out: long work checks it (or hands it to a provider call).
  std::stop_token stop;
  const policy::AssignmentEnvelope* assignment;  // null when the payload carries none
  std::optional<policy::TimePoint> deadline;     // from the assignment's TTL
  UsageGuard& usage;

  // The fencing token of this claim: higher than every earlier claim of the message, and lower
  // than every later one. A handler whose side effects outlive it (an artifact write, a
  // webhook, a row in another system) sends (message.lease.message_id, fence()) with them; the
  // receiver keeps the highest fence it has seen per message and refuses lower ones, so a
  // handler whose lease was lost (cancelled, reclaimed, drained) cannot overwrite the work of
  // the claim that replaced it (docs/architecture.md, "Fencing").
  [[nodiscard]] int64_t fence() const { return message.lease.fence; }
};

struct HandlerResult {
  // committed: the handler recorded the outcome itself, in its own transaction under the lease
  // (Bus::LockLeases), or found the lease gone; the worker writes nothing more about it.
  enum class Kind { complete, retry, fail, give_back, committed };
  Kind kind = Kind::complete;
  std::string result_json;  // complete: the result document (may be empty)
  std::string snippet;      // complete: a short summary
  std::string url;          // complete: where a larger result lives
  std::string error;        // retry / fail / give_back: why
  std::optional<std::chrono::milliseconds> retry_delay;  // retry, give_back: overrides the backoff
  // Published in the same transaction that records the outcome (only if the lease still
  // holds), each as a child of this message: a hand-off can be neither lost nor doubled.
  std::vector<bus::PublishRequest> publish;
  std::vector<bus::AuditEvent> events;  // written on this message's trail in that transaction

  static HandlerResult Complete(std::string result_json = {}, std::string snippet = {},
                                std::string url = {});
  static HandlerResult Retry(std::string error,  // transient: requeue with backoff
                             std::optional<std::chrono::milliseconds> delay = std::nullopt);
  static HandlerResult Fail(std::string error);   // permanent: fail now, never retried
  // Our own infrastructure failed (the database connection was lost): requeue without spending
  // the attempt (bus::FailureKind::infrastructure, bounded per message).
  static HandlerResult GiveBack(std::string error,
                                std::optional<std::chrono::milliseconds> delay = std::nullopt);
  static HandlerResult Committed();
};

// A handler that throws fails the message as retryable, unless it throws PermanentError, or a
// lost database connection (db::FailureKind::connection_lost), which gives the attempt back.
struct PermanentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Handler = std::function<HandlerResult(HandlerContext&)>;

struct WorkerStats {
  uint64_t claimed = 0;
  uint64_t completed = 0;
  uint64_t retried = 0;
  uint64_t failed = 0;  // permanent failures and dead letters
  uint64_t released = 0;
  uint64_t lease_lost = 0;
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

  [[nodiscard]] const std::string& id() const;
  [[nodiscard]] WorkerStats stats() const;
  // Empty while healthy; else the first fatal error (the worker stopped claiming).
  [[nodiscard]] std::string fatal_error() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogo::runtime
