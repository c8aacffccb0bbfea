// The SQL of the ops daemons (reclaimer TTL expiry, retention), named once. Every statement
// touches at most $limit rows, so each transaction stays short.
#pragma once

namespace cogo::ops::sql {

// $1 limit. Queued messages whose assignment TTL already passed (sql/003's rule, stored at
// publish time in ttl_deadline) end as failed with ttl_expired, so they never run late; an
// execute message also gets execute_failed on its trail (a hand-off's parent hears of it
// through the 002 trigger). The partial index agent_messages_ttl_deadline (sql/018) holds only
// queued rows with a deadline, so a pass reads the expired ones and stops. SKIP LOCKED: several
// reclaimers (and claimers) never wait on each other; the outer status check makes a row that
// changed meanwhile a no-op.
inline constexpr const char* kExpireTtlName = "cogo_expire_ttl";
inline constexpr const char* kExpireTtl = R"SQL(
WITH expired AS (
  SELECT id, ttl_deadline AS deadline FROM agent_messages
  WHERE status = 'queued' AND ttl_deadline <= now()
  ORDER BY ttl_deadline
  LIMIT $1
  FOR UPDATE SKIP LOCKED),
ended AS (
  UPDATE agent_messages m
  SET status = 'failed', finished_at = now(), retry_at = NULL, last_error_at = now(),
      last_error = 'ttl_expired: the assignment''s TTL ended at '
                   || to_char(expired.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                   || ' while the message was still queued'
  FROM expired WHERE m.id = expired.id AND m.status = 'queued'
  RETURNING m.id, m.service, m.role, m.tenant, m.attempts, expired.deadline),
events AS (
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT e.id, x.event, e.service, e.role, e.tenant,
         jsonb_build_object('reason', 'ttl_expired', 'deadline', e.deadline, 'attempts', e.attempts)
  FROM ended e
  CROSS JOIN LATERAL (VALUES (1, 'ttl_expired'), (2, 'execute_failed')) AS x(ord, event)
  WHERE x.ord = 1 OR e.role = 'execute'
  ORDER BY e.id, x.ord)
SELECT count(*) FROM ended)SQL";

// $1 statuses text[], $2 age ms, $3 limit. Only final rows, locked first so a concurrent
// operator retry (final -> queued) either happens before (row skipped) or waits.
inline constexpr const char* kPruneMessagesName = "cogo_prune_messages";
inline constexpr const char* kPruneMessages = R"SQL(
WITH picked AS (
  SELECT id FROM agent_messages
  WHERE finished_at < now() - $2 * interval '1 millisecond' AND status = ANY ($1::text[])
    AND status IN ('done', 'failed', 'cancelled', 'dead')
  ORDER BY finished_at
  LIMIT $3
  FOR UPDATE SKIP LOCKED),
deleted AS (
  DELETE FROM agent_messages m USING picked
  WHERE m.id = picked.id AND m.status = ANY ($1::text[])
    AND m.status IN ('done', 'failed', 'cancelled', 'dead')
  RETURNING 1)
SELECT count(*) FROM deleted)SQL";

inline constexpr const char* kCountMessagesName = "cogo_count_prunable_messages";
inline constexpr const char* kCountMessages = R"SQL(
SELECT count(*) FROM agent_messages
WHERE finished_at < now() - $2 * interval '1 millisecond' AND status = ANY ($1::text[])
  AND status IN ('done', 'failed', 'cancelled', 'dead'))SQL";

// $1 age ms, $2 limit, $3 the `at` the previous batch of this pass reached ('-infinity' first).
// Oldest first through bus_events_at_order (sql/018), deleted by ctid: a batch reads its own
// rows and no others (by id it scanned the whole table: id has no index). Starting at the
// previous batch's last `at` skips the index entries of the rows already deleted, which stay in
// the index until VACUUM; an event older than that which commits during the pass (its `at` is
// its transaction's start) waits for the next pass. Returns the count and the last `at`.
inline constexpr const char* kPruneEventsName = "cogo_prune_events";
inline constexpr const char* kPruneEvents = R"SQL(
WITH deleted AS (
  DELETE FROM bus_events WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM bus_events
    WHERE at >= $3::timestamptz AND at < now() - $1 * interval '1 millisecond'
    ORDER BY at LIMIT $2))
  RETURNING at)
SELECT count(*), coalesce(max(at), $3::timestamptz) FROM deleted)SQL";

inline constexpr const char* kCountEventsName = "cogo_count_prunable_events";
inline constexpr const char* kCountEvents =
    "SELECT count(*) FROM bus_events WHERE at < now() - $1 * interval '1 millisecond'";

// $1 age ms, $2 limit.
inline constexpr const char* kPruneUsageName = "cogo_prune_usage";
inline constexpr const char* kPruneUsage = R"SQL(
WITH deleted AS (
  DELETE FROM message_usage WHERE id IN (
    SELECT id FROM message_usage WHERE recorded_at < now() - $1 * interval '1 millisecond'
    ORDER BY recorded_at LIMIT $2)
  RETURNING 1)
SELECT count(*) FROM deleted)SQL";

inline constexpr const char* kCountUsageName = "cogo_count_prunable_usage";
inline constexpr const char* kCountUsage =
    "SELECT count(*) FROM message_usage WHERE recorded_at < now() - $1 * interval '1 millisecond'";

}  // namespace cogo::ops::sql
