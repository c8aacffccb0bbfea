// The executor dispatcher: judges each `orchestrator/execute` message against the policy table
// and the tenant's daily spend, then hands the work to its target route (same payload, tenant,
// shard and correlation id) in the transaction that completes the execute message, or fails it
// with a named reason. The decisions are pure functions below (time passed in); the handler from
// MakeExecutorHandler commits an admitted hand-off and its reservation against the tenant's
// running total in one transaction (so the daily cap holds at commit time), on a connection per
// handler thread, never shared across threads. Thread-safe: the handler may run on any number
// of threads at once; the policy table is immutable.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>
#include <spdlog/logger.h>

#include "cogo/bus/message.h"
#include "cogo/policy/admit.h"
#include "cogo/policy/policy_table.h"
#include "cogo/runtime/handler.h"

namespace cogo::db {
class PipelinedTransaction;
}

namespace cogo::runtime {
struct WorkerOptions;
}

namespace cogo::executor {

inline constexpr const char* kService = "orchestrator";
inline constexpr const char* kRole = "execute";
// Handler threads by default. The messages they hold at one moment are admitted as one group, in
// one transaction (MakeExecutorHandler), so the threads bound a group's size; a thread waiting
// for its group costs only its stack. With 16, the execute hop fell behind at 1,000 requests/s
// offered (messages waited seconds to be claimed); with 64 it kept up, 4-15 ms p50
// (bench/run-pipeline-bench.sh, docs/benchmarks.md).
inline constexpr int kDefaultConcurrency = 64;

// The envelope of an execute message and the policy rule that governs it.
struct ExecuteRequest {
  policy::AssignmentEnvelope envelope;  // target always set
  const policy::PolicyRule* rule = nullptr;  // owned by the table passed to Prepare
};

// Parses the assignment (a target is required) and picks its rule. An unusable envelope is a
// permanent failure, returned ready to hand back to the runtime: `assignment_invalid: ...`.
[[nodiscard]] std::variant<ExecuteRequest, runtime::HandlerResult> Prepare(
    const bus::ClaimedMessage& message, const policy::PolicyTable& table);

// What the tenant has committed today, before the hand-off being judged (see ReserveHandOff).
struct TenantCommitment {
  double spent_today_usd = 0.0;  // usage recorded since the start of the UTC day
  double reserved_usd = 0.0;     // maxCostUsd of handed-off work not yet finished
};

// The admission verdict as a handler result. Admitted: complete with the hand-off to the target
// route (max_attempts from the rule, idempotency key "execute:<id>"). Rejected: a permanent
// failure "<reason>: <detail>" with `policy_violation` and `execute_failed` events.
[[nodiscard]] runtime::HandlerResult Decide(const bus::ClaimedMessage& message,
                                            const ExecuteRequest& request,
                                            const TenantCommitment& committed, double daily_cap_usd,
                                            policy::TimePoint now);

// A transient failure (the spend could not be read): retry after the rule's backoff with an
// `execute_retry` event; on the message's last attempt (its bus max_attempts) the bus
// dead-letters it, and the event is `execute_failed` with reason attempts_exhausted.
[[nodiscard]] runtime::HandlerResult TransientFailure(const bus::ClaimedMessage& message,
                                                      const policy::PolicyRule& rule,
                                                      std::string_view reason,
                                                      std::string_view detail,
                                                      policy::TimePoint now, double unit_sample);

// Queues the reservation of the maxCostUsd of each tenant's hand-offs published in `t`'s
// transaction for the execute messages `execute_ids` against the tenant's running total (sql/021)
// and returns the position of each tenant's result, which ReadCommitment reads: the commitment
// before these hand-offs. Adds a tenant's row on its first admission. Locks the tenants' rows
// (in name order) until the transaction ends, so it belongs last before the commit; the next
// admission of a tenant then sees these reservations. With `within_caps`, each reservation also
// asserts that its tenant stays within its daily cap (PolicyTable::DailyCapUsd) with these
// hand-offs: over it, the statement fails with SQLSTATE CL002 (IsOverDailyCap) and aborts the
// transaction.
[[nodiscard]] std::map<std::string, size_t> QueueReserveHandOffs(
    db::PipelinedTransaction& t, const std::map<std::string, std::vector<int64_t>>& execute_ids,
    const policy::PolicyTable* within_caps = nullptr);
[[nodiscard]] bool IsOverDailyCap(const std::exception& error);
[[nodiscard]] TenantCommitment ReadCommitment(const pqxx::result& rows);

struct ExecutorOptions {
  std::string database_url;                         // for the admissions
  std::shared_ptr<const policy::PolicyTable> policy;  // required
};

// The handler for a Worker on (orchestrator, execute). The messages its handler threads hold at
// one moment are admitted together, in one transaction (one message, when they come one at a
// time): lock the leases (gone: nothing is written for that message), Decide on everything but
// the tenants' totals, publish the hand-offs and complete the execute messages, then
// QueueReserveHandOffs per tenant and Decide again on each tenant's total, hand-off by hand-off;
// all admitted: commit (HandlerResult::Committed). A refusal at the first step is returned for
// the runtime to record; one at the second rolls the transaction back (nothing handed off or
// reserved), and the messages are admitted again one at a time, each then committed or refused
// on its own. It owns one connection (opened on first use, reopened after a failure), released
// when the handler is destroyed.
[[nodiscard]] runtime::Handler MakeExecutorHandler(ExecutorOptions options,
                                                   std::shared_ptr<spdlog::logger> logger);

// Worker options for the executor route: service/role set, runtime assignment guards off
// (admission is the executor's job; the target worker enforces the guards while running).
void ConfigureExecutorWorker(runtime::WorkerOptions& options);

}  // namespace cogo::executor
