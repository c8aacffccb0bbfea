// Every SQL statement of the bus, named once. The names double as prepared-statement names.
// Each state change and its bus_events row are one statement, so they commit together. An
// attempt gets one row, when it ends (sql/019_attempt_trail.sql): the claim writes none, and the
// ending event's detail carries the claim (claimed_at, owner, attempt, fence); a running attempt
// is the message row itself. The view bus_trail reads both back as the whole trail.
#pragma once

#include <string>
#include <string_view>

namespace cogo::bus::sql {

// One message without an idempotency key: the common case, and the cheapest statement the bus
// has. $1 service, $2 role, $3 shard, $4 tenant, $5 payload, $6 priority, $7 max_attempts,
// $8 correlation_id or NULL, $9 delay ms, $10 parent id or NULL. Every message probes the
// shard's wake lock (cogo_wake, sql/005_wake_locks.sql): one due later wakes a waiting sentinel
// too, which then waits no longer than until it falls due (kNextDue). Both publish
// statements store the assignment's TTL deadline (sql/003's rule, created_at being this now())
// for the reclaimer's sweep (sql/018_bus_scale.sql).
inline constexpr const char* kPublishOneName = "cogo_publish_one";
inline constexpr const char* kPublishOne = R"SQL(
WITH inserted AS (
  INSERT INTO agent_messages (service, role, shard, tenant, payload, priority, max_attempts,
                              correlation_id, retry_at, parent_id, ttl_deadline)
  VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8,
          CASE WHEN $9::bigint > 0 THEN now() + $9::bigint * interval '1 millisecond' END, $10,
          cogo_assignment_deadline($5::jsonb, now()))
  RETURNING id)
SELECT id, cogo_wake($1, $2, $3) FROM inserted)SQL";

// $1: jsonb array of {ord, service, role, shard, tenant, payload, priority, max_attempts,
// idempotency_key, correlation_id, delay_ms, parent_id}. Ids are drawn before the insert so each
// input row knows its own id, whether or not ON CONFLICT skipped it. Each shard that got a
// message, due now or later, is woken once.
inline constexpr const char* kPublishName = "cogo_publish";
inline constexpr const char* kPublish = R"SQL(
WITH input AS MATERIALIZED (
  SELECT nextval('agent_messages_id_seq') AS new_id, x.*
  FROM jsonb_to_recordset($1::jsonb) AS x(ord int, service text, role text, shard int, tenant text,
       payload jsonb, priority smallint, max_attempts int, idempotency_key text,
       correlation_id text, delay_ms bigint, parent_id bigint)),
inserted AS (
  INSERT INTO agent_messages (id, service, role, shard, tenant, payload, priority, max_attempts,
                              idempotency_key, correlation_id, retry_at, parent_id, ttl_deadline)
  OVERRIDING SYSTEM VALUE
  SELECT new_id, service, role, shard, tenant, payload, priority, max_attempts, idempotency_key,
         correlation_id, CASE WHEN delay_ms > 0 THEN now() + delay_ms * interval '1 millisecond' END,
         parent_id, cogo_assignment_deadline(payload, now())
  FROM input ORDER BY ord
  ON CONFLICT (service, role, tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id, service, role, shard),
woken AS MATERIALIZED (
  SELECT cogo_wake(service, role, shard) AS notified
  FROM (SELECT DISTINCT service, role, shard FROM inserted) AS shards)
SELECT input.ord, input.new_id, inserted.id IS NOT NULL AS created,
       (SELECT count(*) FILTER (WHERE notified) FROM woken) AS notifications
FROM input LEFT JOIN inserted ON inserted.id = input.new_id
ORDER BY input.ord)SQL";

// The messages an idempotency key already names (run after a publish skipped some rows). One
// lookup of the unique key index per input row: the LIMIT keeps the lateral subquery from being
// flattened into a join, whose generic plan made on an empty table hashed the whole index.
inline constexpr const char* kFindByKeyName = "cogo_find_by_key";
inline constexpr const char* kFindByKey = R"SQL(
SELECT x.ord, m.id
FROM jsonb_to_recordset($1::jsonb) AS x(ord int, service text, role text, tenant text,
                                        idempotency_key text)
CROSS JOIN LATERAL (
  SELECT id FROM agent_messages
  WHERE service = x.service AND role = x.role AND tenant = x.tenant
    AND idempotency_key = x.idempotency_key
  LIMIT 1) m)SQL";

// $1 service, $2 role, $3 shards int[], $4 limit, $5 owner, $6 lease ms.
// Every claim raises the message's fencing token (sql/009_fencing.sql) and counts an attempt.
// started_at is the claim's time: the attempt's end event copies it as claimed_at, and the
// worker reads it back as claimed_at_epoch. It is the clock once the claim's snapshot is taken,
// not now(): now() is when the claim's transaction began, before its plan was made (at Bind, on
// a fresh connection for milliseconds) or a statement earlier, so a reclaim or an event that
// committed meanwhile, which this claim saw, would read after the claim on the trail. The
// lease runs from the same instant.
// The TTL deadline is the one stored at publish (sql/018); a row published without one (by a
// binary older than 018) gets it from the same function, the one TTL rule, here.
// Two index scans per shard, each already in its order, so LIMIT stops it early (with
// `shard = ANY` the planner read every queued row of the route and sorted them): the ready
// rows in claim order, and the delayed rows that fell due, earliest first, up to now() as an
// index condition, so a row still waiting is never visited (sql/022). The best of both go by
// priority, then id; the claim clears retry_at, so a requeued message is ready. The update
// finds its rows by primary key (a join with `picked` could hash a scan of the whole table).
// The times go out as date_part's float8 epochs: extract() computes a numeric, and its cast to
// float8 prints and parses it again, twice the cost for the same value.
inline constexpr const char* kClaimName = "cogo_claim";
inline constexpr const char* kClaim = R"SQL(
WITH picked AS (
  SELECT q.id FROM unnest($3::int[]) AS s(shard)
  CROSS JOIN LATERAL (
    SELECT * FROM (
      SELECT id, priority FROM agent_messages
      WHERE status = 'queued' AND retry_at IS NULL AND service = $1 AND role = $2 AND shard = s.shard
      ORDER BY priority DESC, id
      LIMIT $4
      FOR UPDATE SKIP LOCKED) ready
    UNION ALL
    SELECT * FROM (
      SELECT id, priority FROM agent_messages
      WHERE status = 'queued' AND retry_at <= now() AND service = $1 AND role = $2 AND shard = s.shard
      ORDER BY retry_at
      LIMIT $4
      FOR UPDATE SKIP LOCKED) due) q
  ORDER BY q.priority DESC, q.id
  LIMIT $4),
claim_time AS MATERIALIZED (SELECT clock_timestamp() AS at),
claimed AS (
  UPDATE agent_messages m
  SET status = 'running', attempts = m.attempts + 1, fence = m.fence + 1, lease_owner = $5,
      lease_expires_at = (SELECT at FROM claim_time) + $6 * interval '1 millisecond',
      started_at = (SELECT at FROM claim_time), retry_at = NULL
  WHERE m.id = ANY (ARRAY(SELECT id FROM picked))
  RETURNING m.id, m.service, m.role, m.shard, m.tenant, m.payload, m.priority, m.attempts,
            m.max_attempts, m.correlation_id, m.created_at, m.fence, m.started_at,
            coalesce(m.ttl_deadline, CASE WHEN m.payload ? '__assignment'
                                          THEN cogo_assignment_deadline(m.payload, m.created_at) END)
              AS ttl_deadline),
busy AS (
  UPDATE bus_workers SET idle = false, last_seen = now()
  WHERE worker_id = $5 AND idle AND EXISTS (SELECT 1 FROM claimed))
SELECT id, service, role, shard, tenant, payload::text, priority, attempts, max_attempts,
       coalesce(correlation_id, ''), date_part('epoch', created_at), date_part('epoch', started_at),
       fence, date_part('epoch', ttl_deadline)
FROM claimed ORDER BY priority DESC, id)SQL";

// $1 service, $2 role, $3 shards int[]. Sent with a worker's claim: in how many ms the earliest
// delayed message of the shards falls due, by the database's clock (<= 0: due already, e.g.
// under another claimer's lock; NULL: none waits), so the idle worker waits no longer
// (runtime/idle_protocol.h). One probe per shard of the delayed index (sql/022). Its own
// statement, not part of kClaim: in a session that plans each execution anew (custom plans, as
// `cogo-bench sql` does) it cost every claim ~0.2 ms of planning. A worker's session plans once
// (db::kPreferIndexScans) and sends it in the claim's message (Bus::ClaimOrNextDue).
inline constexpr const char* kNextDueName = "cogo_next_due";
inline constexpr const char* kNextDue = R"SQL(
SELECT ceil(extract(epoch FROM min(d.retry_at) - now()) * 1000)::bigint
FROM unnest($3::int[]) AS s(shard)
CROSS JOIN LATERAL (
  SELECT retry_at FROM agent_messages
  WHERE status = 'queued' AND retry_at IS NOT NULL AND service = $1 AND role = $2 AND shard = s.shard
  ORDER BY retry_at
  LIMIT 1) d)SQL";

// $1: jsonb array of {id, owner, fence, result, snippet, url}. `id = ANY` keeps the update
// on primary-key lookups; joined with the input alone, it hashed a scan of every running row.
inline constexpr const char* kCompleteName = "cogo_complete";
inline constexpr const char* kComplete = R"SQL(
WITH input AS MATERIALIZED (
  SELECT * FROM jsonb_to_recordset($1::jsonb)
    AS x(id bigint, owner text, fence bigint, result jsonb, snippet text, url text)),
done AS (
  UPDATE agent_messages m
  SET status = 'done', result = input.result, result_snippet = input.snippet,
      result_url = input.url, lease_owner = NULL, lease_expires_at = NULL, finished_at = now()
  FROM input
  WHERE m.id = ANY (ARRAY(SELECT id FROM input))
    AND m.id = input.id AND m.status = 'running' AND m.lease_owner = input.owner
    AND m.fence = input.fence
  RETURNING m.id, m.service, m.role, m.tenant, m.attempts, m.fence, m.started_at, input.owner),
events AS (
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT id, 'completed', service, role, tenant,
         jsonb_build_object('claimed_at', started_at, 'owner', owner, 'attempt', attempts,
                            'fence', fence)
  FROM done)
SELECT id, fence FROM done)SQL";

// The same completions, all or nothing: when any lease of $1 no longer holds, it raises SQLSTATE
// CL001 (sql/026_lease_assertion.sql) and the transaction rolls back. A flush of completions
// queues their children and events before it instead of after a lock of the leases: they stand
// or fall with it, and the lock's statement is saved.
inline constexpr const char* kCompleteAllName = "cogo_complete_all";
static_assert(std::string_view(kComplete).ends_with("SELECT id, fence FROM done"),
              "kCompleteAll replaces kComplete's last line");
inline const std::string kCompleteAll =
    std::string(kComplete, std::string_view(kComplete).rfind("SELECT id, fence FROM done")) +
    "SELECT cogo_leases_held(count(*), jsonb_array_length($1::jsonb)) FROM done";

// $1 id, $2 owner, $3 fence, $4 error, $5 retryable, $6 retry delay ms, $7 give the attempt
// back (our own infrastructure failed: FailureKind::infrastructure), $8 how many times a
// message's attempt may be given back (sql/012_attempts_given_back.sql); beyond that the
// failure spends it like any retryable one.
inline constexpr const char* kFailName = "cogo_fail";
inline constexpr const char* kFail = R"SQL(
WITH target AS (
  SELECT id, attempts AS attempt, started_at AS claimed_at,
         $7 AND attempts_given_back < $8 AS given_back, attempts >= max_attempts AS spent
  FROM agent_messages
  WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND fence = $3
  FOR UPDATE),
failed AS (
  UPDATE agent_messages m
  SET status = CASE WHEN NOT $5 THEN 'failed'
                    WHEN t.spent AND NOT t.given_back THEN 'dead' ELSE 'queued' END,
      attempts = m.attempts - CASE WHEN $5 AND t.given_back THEN 1 ELSE 0 END,
      attempts_given_back = m.attempts_given_back + CASE WHEN $5 AND t.given_back THEN 1 ELSE 0 END,
      retry_at = CASE WHEN $5 AND (t.given_back OR NOT t.spent)
                      THEN now() + $6 * interval '1 millisecond' ELSE m.retry_at END,
      finished_at = CASE WHEN NOT $5 OR (t.spent AND NOT t.given_back) THEN now() END,
      last_error = $4, last_error_at = now(), lease_owner = NULL, lease_expires_at = NULL
  FROM target t
  WHERE m.id = t.id
  RETURNING m.id, m.status, m.service, m.role, m.shard, m.tenant, m.retry_at, t.given_back,
            t.attempt, t.claimed_at),
events AS (
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT id, CASE status WHEN 'queued' THEN 'retry_scheduled'
                         WHEN 'dead' THEN 'dead_lettered' ELSE 'failed' END,
         service, role, tenant,
         jsonb_strip_nulls(jsonb_build_object(
           'error', $4::text, 'claimed_at', claimed_at, 'owner', $2::text, 'attempt', attempt,
           'fence', $3::bigint,
           'retry_at', CASE WHEN status = 'queued' THEN retry_at END,
           'attempt_given_back', CASE WHEN status = 'queued' AND given_back THEN true END))
  FROM failed)
SELECT status, CASE WHEN status = 'queued' THEN cogo_wake(service, role, shard) END
FROM failed)SQL";

// $1: jsonb array of {id, owner, fence}, $2 lease ms. Returns the leases it extended; a message
// claimed again (even by the same worker) extends only for its latest fence.
inline constexpr const char* kHeartbeatName = "cogo_heartbeat";
inline constexpr const char* kHeartbeat = R"SQL(
WITH input AS MATERIALIZED (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, owner text, fence bigint))
UPDATE agent_messages m SET lease_expires_at = now() + $2 * interval '1 millisecond'
FROM input
WHERE m.id = ANY (ARRAY(SELECT id FROM input))
  AND m.id = input.id AND m.status = 'running' AND m.lease_owner = input.owner
  AND m.fence = input.fence
RETURNING m.id, m.fence)SQL";

// $1 owner. Every message leased to a worker (the lease index holds exactly the running rows).
inline constexpr const char* kLeasesOfName = "cogo_leases_of";
inline constexpr const char* kLeasesOf = R"SQL(
SELECT id, attempts, fence FROM agent_messages
WHERE lease_expires_at IS NOT NULL AND status = 'running' AND lease_owner = $1)SQL";

// $1 id, $2 owner, $3 fence. The attempt is given back to the retry budget; the fence stays.
inline constexpr const char* kReleaseName = "cogo_release";
inline constexpr const char* kRelease = R"SQL(
WITH released AS (
  UPDATE agent_messages
  SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_expires_at = NULL
  WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND fence = $3
  RETURNING id, service, role, shard, tenant, attempts, started_at),
events AS (
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT id, 'released', service, role, tenant,
         jsonb_build_object('claimed_at', started_at, 'owner', $2::text, 'attempt', attempts + 1,
                            'fence', $3::bigint)
  FROM released)
SELECT id, cogo_wake(service, role, shard) FROM released)SQL";

// $1 id, $2 reason. Cancelling a running message ends its attempt: the event carries the claim.
inline constexpr const char* kCancelName = "cogo_cancel";
inline constexpr const char* kCancel = R"SQL(
WITH target AS (
  SELECT id, status = 'running' AS running, started_at, lease_owner, attempts, fence
  FROM agent_messages
  WHERE id = $1 AND status IN ('queued', 'running')
  FOR UPDATE),
cancelled AS (
  UPDATE agent_messages m
  SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, finished_at = now(),
      last_error = $2, last_error_at = now()
  FROM target t
  WHERE m.id = t.id
  RETURNING m.id, m.service, m.role, m.tenant, t.running, t.started_at, t.lease_owner,
            t.attempts, t.fence)
INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
SELECT id, 'cancelled', service, role, tenant,
       jsonb_build_object('reason', $2::text)
         || CASE WHEN running THEN jsonb_build_object('claimed_at', started_at, 'owner', lease_owner,
                                                      'attempt', attempts, 'fence', fence)
                 ELSE '{}'::jsonb END
FROM cancelled
RETURNING message_id)SQL";

// $1 service, $2 role, $3 tenant, $4 idempotency keys (a JSON array), $5 reason. Queued rows only: a message
// already claimed runs to its end. Finds them through the idempotency index.
inline constexpr const char* kCancelQueuedName = "cogo_cancel_queued";
inline constexpr const char* kCancelQueued = R"SQL(
WITH cancelled AS (
  UPDATE agent_messages
  SET status = 'cancelled', finished_at = now(), last_error = $5, last_error_at = now()
  WHERE service = $1 AND role = $2 AND tenant = $3 AND idempotency_key IN (SELECT jsonb_array_elements_text($4::jsonb))
    AND status = 'queued'
  RETURNING id, service, role, tenant)
INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
SELECT id, 'cancelled', service, role, tenant, jsonb_build_object('reason', $5::text)
FROM cancelled
RETURNING message_id)SQL";

// $1 limit. SKIP LOCKED lets several reclaimers run at once without touching the same row.
inline constexpr const char* kReclaimName = "cogo_reclaim";
inline constexpr const char* kReclaim = R"SQL(
WITH expired AS (
  SELECT id, lease_owner AS owner, fence, started_at AS claimed_at FROM agent_messages
  WHERE status = 'running' AND lease_expires_at < now()
  ORDER BY lease_expires_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED),
moved AS (
  UPDATE agent_messages m
  SET status = CASE WHEN m.attempts >= m.max_attempts THEN 'dead' ELSE 'queued' END,
      finished_at = CASE WHEN m.attempts >= m.max_attempts THEN now() END,
      last_error = 'lease expired', last_error_at = now(),
      lease_owner = NULL, lease_expires_at = NULL
  FROM expired WHERE m.id = expired.id
  RETURNING m.id, m.status, m.service, m.role, m.shard, m.tenant, m.attempts,
            expired.owner, expired.fence, expired.claimed_at),
events AS (
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT id, CASE WHEN status = 'dead' THEN 'dead_lettered' ELSE 'reclaimed' END,
         service, role, tenant,
         jsonb_build_object('reason', 'lease_expired', 'claimed_at', claimed_at, 'owner', owner,
                            'attempt', attempts, 'fence', fence)
  FROM moved),
woken AS MATERIALIZED (
  SELECT cogo_wake(service, role, shard) AS notified
  FROM (SELECT DISTINCT service, role, shard FROM moved
        WHERE status = 'queued') AS requeued)
SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'dead'),
       (SELECT count(*) FILTER (WHERE notified) FROM woken)
FROM moved)SQL";

// $1 id (NULL: every dead letter of the route), $2 service or '', $3 role or '',
// $4 statuses that may be retried. A fresh retry budget; the fence is never reset.
inline constexpr const char* kRetryName = "cogo_retry";
inline constexpr const char* kRetry = R"SQL(
WITH retried AS (
  UPDATE agent_messages
  SET status = 'queued', attempts = 0, retry_at = NULL, finished_at = NULL,
      lease_owner = NULL, lease_expires_at = NULL
  WHERE status = ANY ($4::text[])
    AND ($1::bigint IS NULL OR id = $1::bigint)
    AND ($2 = '' OR service = $2) AND ($3 = '' OR role = $3)
  RETURNING id, service, role, shard, tenant),
events AS (
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT id, 'retried', service, role, tenant, jsonb_build_object('by', 'operator')
  FROM retried),
woken AS MATERIALIZED (
  SELECT cogo_wake(service, role, shard) AS notified
  FROM (SELECT DISTINCT service, role, shard FROM retried) AS due)
SELECT id, (SELECT count(*) FILTER (WHERE notified) FROM woken) FROM retried)SQL";

inline constexpr const char* kRegisterWorkerName = "cogo_register_worker";
inline constexpr const char* kRegisterWorker = R"SQL(
INSERT INTO bus_workers (worker_id, service, role, shards, host, pid)
VALUES ($1, $2, $3, $4::int[], $5, $6)
ON CONFLICT (worker_id) DO UPDATE
SET service = EXCLUDED.service, role = EXCLUDED.role, shards = EXCLUDED.shards,
    host = EXCLUDED.host, pid = EXCLUDED.pid, last_seen = now(), idle = false)SQL";

// $1 service, $2 role. Whether this login's claims of the route can take anything (sql/023: a
// worker role works only its own routes), and the login, to name it in the refusal.
inline constexpr const char* kMayWorkName = "cogo_may_work";
inline constexpr const char* kMayWork = "SELECT cogo_may_work($1, $2), current_user::text";

inline constexpr const char* kTouchWorkerName = "cogo_touch_worker";
inline constexpr const char* kTouchWorker =
    "UPDATE bus_workers SET last_seen = now() WHERE worker_id = $1";

inline constexpr const char* kUnregisterWorkerName = "cogo_unregister_worker";
inline constexpr const char* kUnregisterWorker = "DELETE FROM bus_workers WHERE worker_id = $1";

// The idle protocol (sql/005_wake_locks.sql). $1 worker id, $2 service, $3 role, $4 shards.
// Shows the worker idle to operators and tries to become the sentinel of its shards:
// 'sentinel', 'covered' or 'busy' (see cogo_try_idle).
inline constexpr const char* kAnnounceIdleName = "cogo_announce_idle";
inline constexpr const char* kAnnounceIdle = R"SQL(
WITH shown AS (
  UPDATE bus_workers SET idle = true, last_seen = now() WHERE worker_id = $1 AND NOT idle)
SELECT cogo_try_idle($2, $3, $4::int[]))SQL";

// $1 service, $2 role, $3 shards.
inline constexpr const char* kLeaveIdleName = "cogo_leave_idle";
inline constexpr const char* kLeaveIdle = "SELECT cogo_leave_idle($1, $2, $3::int[])";

// $1 service, $2 role. Once per route and LISTEN connection: not prepared.
inline constexpr const char* kWakeChannel = "SELECT cogo_wake_channel($1, $2)";

// $1: jsonb array of {id, owner, fence}. Locks the rows whose lease still holds, in id order,
// so everything else a flush writes about them in this transaction stands or falls with them.
inline constexpr const char* kLockLeasesName = "cogo_lock_leases";
inline constexpr const char* kLockLeases = R"SQL(
WITH input AS MATERIALIZED (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, owner text, fence bigint))
SELECT m.id, m.fence
FROM agent_messages m JOIN input ON m.id = input.id
WHERE m.id = ANY (ARRAY(SELECT id FROM input))
  AND m.status = 'running' AND m.lease_owner = input.owner AND m.fence = input.fence
ORDER BY m.id
FOR UPDATE OF m)SQL";

// The same lock, all or nothing: when any lease of $1 no longer holds, it raises SQLSTATE CL001
// (sql/026_lease_assertion.sql), which aborts the transaction and skips the rest of the message
// it came in. What a pipelined flush queues after it can then assume every lease held.
inline constexpr const char* kLockAllLeasesName = "cogo_lock_all_leases";
inline const std::string kLockAllLeases = std::string("SELECT cogo_leases_held(count(*), jsonb_array_length($1::jsonb)) FROM (") +
                                          kLockLeases + ") AS locked";

// $1: jsonb array of {message_id, event, detail}; the route and tenant come from the message.
// Ids follow the array's order (ORDER BY ordinality: a join may emit rows in any order), so a
// trail reads cause before effect (policy_violation, then execute_failed). `id = ANY` keeps
// the messages on primary-key lookups: a flusher's generic plan made while agent_messages was
// nearly empty hashed a scan of the whole table, on every flush, until the next ANALYZE.
inline constexpr const char* kAddEventsName = "cogo_add_events";
inline constexpr const char* kAddEvents = R"SQL(
WITH x AS MATERIALIZED (
  SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (message_id bigint, event text, detail jsonb))
                WITH ORDINALITY AS x(message_id, event, detail, ord))
INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
SELECT m.id, x.event, m.service, m.role, m.tenant, x.detail
FROM x JOIN agent_messages m ON m.id = x.message_id
WHERE m.id = ANY (ARRAY(SELECT message_id FROM x))
ORDER BY x.ord)SQL";

}  // namespace cogo::bus::sql
