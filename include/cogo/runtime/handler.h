// The handler contract: what a worker hands a handler for one claimed message (HandlerContext,
// with the UsageGuard that meters its spend) and what the handler answers (HandlerResult). A
// handler includes this header only; the worker that runs it is runtime/worker.h. A handler
// may run on any of the worker's handler threads, one message per call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include "cogo/base/clock.h"
#include "cogo/bus/message.h"
#include "cogo/policy/assignment.h"
#include "cogo/policy/metering.h"

namespace cogo::runtime {

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
  // When the assignment's TTL ends, on this process's steady clock (a provider call's deadline
  // as it is). Judged by the database's clock: the time left is the deadline the bus stored at
  // publish minus its now() at the claim, so a host whose wall clock is off moves nothing.
  std::optional<base::Clock::TimePoint> deadline;
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
  // (Bus::LockLeases), or found the lease gone (lease_lost); the worker writes nothing more
  // about it.
  enum class Kind { complete, retry, fail, give_back, committed };
  Kind kind = Kind::complete;
  bool lease_lost = false;  // committed: nothing was written, the lease was gone
  std::string result_json;  // complete: the result document (may be empty)
  std::string snippet;      // complete: a short summary
  std::string url;          // complete: where a larger result lives
  // retry / fail / give_back: why. `reason` is a stable snake_case name (ttl_exceeded,
  // provider_timeout) that usage rows, audit events and tests key on; `detail` is one line for
  // people. last_error stores error(): "reason: detail".
  std::string reason;
  std::string detail;
  std::optional<std::chrono::milliseconds> retry_delay;  // retry, give_back: overrides the backoff
  // Published in the same transaction that records the outcome (only if the lease still
  // holds), each as a child of this message: a hand-off can be neither lost nor doubled.
  std::vector<bus::PublishRequest> publish;
  std::vector<bus::AuditEvent> events;  // written on this message's trail in that transaction

  static HandlerResult Complete(std::string result_json = {}, std::string snippet = {},
                                std::string url = {});
  // Transient: requeue with backoff (or after `delay`).
  static HandlerResult Retry(std::string reason, std::string detail = {},
                             std::optional<std::chrono::milliseconds> delay = std::nullopt);
  static HandlerResult Fail(std::string reason, std::string detail = {});  // permanent, never retried
  // Our own infrastructure failed (the database connection was lost): requeue without spending
  // the attempt (bus::FailureKind::infrastructure, bounded per message).
  static HandlerResult GiveBack(std::string reason, std::string detail = {},
                                std::optional<std::chrono::milliseconds> delay = std::nullopt);
  static HandlerResult Committed();
  static HandlerResult LeaseLost();  // committed, having found the lease gone (counted as lease_lost)

  // The failure as last_error reads it: "reason: detail", or the reason alone.
  [[nodiscard]] std::string error() const;
};

// A handler that throws fails the message as retryable (reason handler_exception), unless it
// throws PermanentError, or a lost database connection (db::FailureKind::connection_lost), which
// gives the attempt back (reason connection_lost).
class PermanentError : public std::runtime_error {
 public:
  PermanentError(std::string reason, std::string detail);
  [[nodiscard]] const std::string& reason() const { return reason_; }
  [[nodiscard]] const std::string& detail() const { return detail_; }

 private:
  std::string reason_;
  std::string detail_;
};

using Handler = std::function<HandlerResult(HandlerContext&)>;

}  // namespace cogo::runtime
