// The executor's SQL, named once. Names double as log tags.
#pragma once

namespace cogo::executor::sql {

// $1 tenant. Serialises admissions of one tenant until the transaction ends: the spend read
// below and the hand-off that reserves its budget commit before the next admission of the
// tenant reads, so parallel executors cannot all pass the cap on the same reading. A separate
// statement from the read: in READ COMMITTED the read's snapshot must be taken after the wait,
// or it would miss the hand-off committed by the admission it waited for. The class is the
// executor's own (001: 1668245295, migrator: 1668245296, 005: 1668245297, metrics: 1668245301).
inline constexpr const char* kLockTenantName = "cogo_executor_lock_tenant";
inline constexpr const char* kLockTenant =
    "SELECT pg_advisory_xact_lock(1668245298, hashtext($1))";

// $1 tenant. What the tenant has committed: usage recorded since the start of the UTC day
// (database clock), and the maxCostUsd of every hand-off of an execute message that has not
// finished yet (queued or running children), whenever it was handed off. A child that already
// recorded usage on an earlier attempt counts twice until it finishes: the cap errs on the side
// of refusing. Malformed budgets count as 0 (the executor never hands one off).
inline constexpr const char* kTenantCommittedName = "cogo_executor_tenant_committed";
inline constexpr const char* kTenantCommitted = R"SQL(
SELECT
  (SELECT coalesce(sum(u.cost_usd), 0)::float8 FROM message_usage u
   WHERE u.tenant = $1
     AND u.recorded_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
  (SELECT coalesce(sum(CASE WHEN jsonb_typeof(c.payload->'__assignment'->'budget'->'maxCostUsd') = 'number'
                            THEN (c.payload->'__assignment'->'budget'->'maxCostUsd')::numeric
                            ELSE 0 END), 0)::float8
   FROM agent_messages c JOIN agent_messages p ON p.id = c.parent_id
   WHERE c.tenant = $1 AND c.parent_id IS NOT NULL AND c.status IN ('queued', 'running')
     AND p.role = 'execute'))SQL";

}  // namespace cogo::executor::sql
