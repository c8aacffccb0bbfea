// The executor's SQL, named once. Names double as log tags.
#pragma once

#include <string>

namespace cogo::executor::sql {

// $1 tenant, $2 the ids of the tenant's execute messages admitted in this transaction (bigint[]).
// The admission's reservation against the tenant's running total (sql/021), its transaction's
// last statement. Folds the changes recorded since the tenant's last admission (usage, hand-offs
// ended or retried) into the tenant's row, starts a new UTC day when one began (the day's spend
// from zero; reservations of unfinished hand-offs carry over), and adds the maxCostUsd of the
// hand-offs this transaction published for them (read from those rows, the way the trigger that
// releases them reads it): their children whose row version this transaction wrote (xmin; and
// created_at, so a row frozen long ago whose raw xmin came round again cannot match). A hand-off
// published before (an operator retried a done execute message) holds its own reservation and
// is not counted again. So the statement needs no ids back from the publish and rides in the
// same message. Returns the commitment before these hand-offs: spent today, reserved. The
// tenant's row must exist (kAddTenant before it).
//
// The row lock orders one tenant's admissions and lasts only from this statement to the
// commit. An admission that waited for it judges the row the previous one committed (READ
// COMMITTED re-evaluates the update on the newest row version), so each one's decision sees
// every reservation committed before it: the cap holds at commit time. Changes committed after
// this statement's snapshot stay in the table for the next fold (a change deleted by an
// admission that committed meanwhile is skipped here and already in the row).
inline constexpr const char* kReserveHandOffsName = "cogo_executor_reserve_hand_offs";
inline constexpr const char* kReserveHandOffs = R"SQL(
WITH folded AS (
  DELETE FROM tenant_spend_changes
  WHERE tenant = $1 AND EXISTS (SELECT FROM tenant_spend WHERE tenant = $1)
  RETURNING day, spent_usd, reserved_usd),
hand_offs AS (
  SELECT coalesce(sum(cogo_reserved_usd(payload)), 0) AS usd FROM agent_messages
  WHERE parent_id = ANY ($2::bigint[]) AND xmin = pg_current_xact_id()::xid AND created_at = now())
UPDATE tenant_spend t
SET (day, spent_usd, reserved_usd, updated_at) = (
  SELECT n.day,
         CASE WHEN t.day = n.day THEN t.spent_usd ELSE 0 END
           + coalesce((SELECT sum(f.spent_usd) FROM folded f WHERE f.day = n.day), 0),
         greatest(t.reserved_usd + coalesce((SELECT sum(f.reserved_usd) FROM folded f), 0), 0) + h.usd,
         now()
  FROM (SELECT greatest(t.day, cogo_utc_day(now()), (SELECT max(f.day) FROM folded f)) AS day) n)
FROM hand_offs h
WHERE t.tenant = $1
RETURNING t.spent_usd::float8, (t.reserved_usd - h.usd)::float8)SQL";

// $3 the tenant's daily cap in USD (numeric text). The same reservation, asserting that the tenant
// stays within its cap with these hand-offs: over it, it raises SQLSTATE CL002
// (sql/027_daily_cap_assertion.sql), which aborts the transaction and skips the rest of its
// message. For an admission sent in one message with its COMMIT, on the guess that it fits.
inline constexpr const char* kReserveHandOffsWithinCapName = "cogo_executor_reserve_hand_offs_within_cap";
inline const std::string kReserveHandOffsWithinCap =
    std::string(kReserveHandOffs) + ", cogo_within_daily_cap(t.spent_usd + t.reserved_usd, $3::numeric)";

// $1 tenant. The tenant's row on its first admission (a concurrent first admission's insert
// wins; this one then waits for it and updates that row). Sent before every reservation: when
// the row exists, the conflict writes nothing.
inline constexpr const char* kAddTenantName = "cogo_executor_add_tenant";
inline constexpr const char* kAddTenant =
    "INSERT INTO tenant_spend (tenant, day) VALUES ($1, cogo_utc_day(now())) "
    "ON CONFLICT (tenant) DO NOTHING";

}  // namespace cogo::executor::sql
