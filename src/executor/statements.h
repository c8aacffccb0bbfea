// The executor's SQL, named once. Names double as log tags.
#pragma once

namespace cogo::executor::sql {

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
