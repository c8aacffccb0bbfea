// The worker's guards around one handler call, as pure functions of the claimed message, the
// worker's rules and the time (passed in, on the steady clock): may the handler run
// (BeforeRun), does what it answered stand (AfterRun), and what does the bus record for it
// (ToOutcome). No I/O, no clock: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cogo/base/clock.h"
#include "cogo/bus/message.h"
#include "cogo/policy/assignment.h"
#include "cogo/policy/backoff.h"
#include "cogo/policy/metering.h"
#include "cogo/runtime/handler.h"
#include "cogo/usage/usage_log.h"

namespace cogo::runtime {

// What a worker's guards enforce. A message whose payload carries `__assignment` always has it
// enforced: invalid -> assignment_invalid, a model outside `served_models` (when not empty) ->
// model_not_served, past its TTL -> ttl_exceeded, over budget -> budget_exceeded; all permanent
// failures.
struct GuardRules {
  std::vector<std::string> served_models;  // empty: any model
  bool require_assignment = false;         // true: a payload without one is assignment_missing
  // false: the handler judges `__assignment` itself and none of the guards above run (the
  // executor, whose admission check reports ttl_expired etc. with its own audit events).
  bool enforce_assignment = true;
};

struct BeforeRunVerdict {
  std::optional<policy::AssignmentEnvelope> assignment;  // parsed, when enforced and present
  std::optional<base::Clock::TimePoint> deadline;        // from its TTL, on the steady clock
  std::optional<HandlerResult> refusal;  // set: the handler must not run (a policy violation)
};

// Before the handler runs: assignment_missing / assignment_invalid / model_not_served /
// ttl_exceeded, each a permanent failure with a policy_violation event. The TTL is judged by the
// database's clock: the deadline the bus stored at publish minus the claim's now() (both on
// `message`) is the time left, counted from `claim_sent` (the steady clock just before the
// claim was sent, so the claim's round trip only shortens it); `now` is the steady clock now.
// The worker computes no deadline itself: the TTL rule is the database's alone.
[[nodiscard]] BeforeRunVerdict BeforeRun(const GuardRules& rules, const bus::ClaimedMessage& message,
                                         base::Clock::TimePoint claim_sent, base::Clock::TimePoint now);

// After the handler returned: a budget crossed (budget_exceeded, naming the limit and the spend)
// or a deadline passed (ttl_exceeded) outranks what it answered, unless it committed its outcome
// itself.
[[nodiscard]] HandlerResult AfterRun(HandlerResult result, policy::MeterVerdict budget,
                                     const policy::Usage& spent,
                                     std::optional<base::Clock::TimePoint> deadline,
                                     base::Clock::TimePoint now);

// What the flusher writes for one claim.
struct Outcome {
  enum class Kind { complete, fail, release, committed };
  Kind kind = Kind::complete;
  bus::Completion completion;  // complete, release, committed: its lease
  bool lease_lost = false;     // committed: the handler found the lease gone
  bus::Failure failure;        // fail
  std::vector<bus::PublishRequest> publish;  // complete: children of the message
  std::vector<bus::AuditEvent> events;
  std::optional<usage::UsageRecord> usage;

  static Outcome Release(const bus::Lease& lease);
  static Outcome Fail(bus::Failure failure);
  [[nodiscard]] const bus::Lease& lease() const {
    return kind == Kind::fail ? failure.lease : completion.lease;
  }
};

// The handler's answer as the bus outcome. A result that could not be written (a follow-up the
// bus refuses, a result or event detail that is not JSON) fails permanently instead
// (invalid_follow_up, invalid_handler_result), so one bad answer cannot fail a whole flush.
// Retry and fail wait the handler's delay, else NextBackoff(attempt, backoff, unit_sample).
// `usage`: what the handler reported (nullopt: nothing), recorded with the reason as outcome.
[[nodiscard]] Outcome ToOutcome(const bus::ClaimedMessage& message, HandlerResult result,
                                const policy::AssignmentEnvelope* assignment,
                                const std::optional<policy::Usage>& usage,
                                const policy::BackoffParams& backoff, double unit_sample);

// Calls the handler; what it throws becomes its answer: PermanentError -> fail with its reason,
// a lost database connection -> give_back (connection_lost), anything else -> retry
// (handler_exception).
[[nodiscard]] HandlerResult CallHandler(const Handler& handler, HandlerContext& context);

}  // namespace cogo::runtime
