// Every SQL statement of the metrics server, named once. All of them read; only the alert
// evaluator's writes (the last group) touch the tables of sql/015_alerts.sql.
//
// Why they stay fast on a bus of millions of rows (EXPLAINs in docs/metrics.md): every scan is
// bounded by time on a column whose values follow insertion order and carries a BRIN index
// (agent_messages.finished_at, bus_events.at, decisions.decided_at, workflow_runs.created_at),
// so a 15m window reads the last few block ranges, not the table; or it reads a partial index
// that holds only live rows (agent_messages_queued_ready, agent_messages_queued_delayed,
// agent_messages_lease). Nothing counts the finished rows of agent_messages as a whole.
// Parameters: a window is float8 seconds, a tenant is text or NULL (every tenant: the service
// role).
#pragma once

namespace cogo::metrics::sql {

// Run first in every read (transaction-local). Percentiles sort the window's rows, and in the
// default 4MB a 24h window of a busy bus spills to disk. And no JIT: the planner's estimate for
// the decisions view (a few index probes per decision) passes jit_above_cost, and compiling
// cost 1.3 s of the 1.9 s that a 24h window of 28,000 decisions took (docs/metrics.md).
inline constexpr const char* kReadSettings =
    "SELECT set_config('work_mem', '64MB', true), set_config('jit', 'off', true)";

// $1 window s, $2 tenant. Messages that finished in the window: queue wait (started_at -
// created_at: from publish to the start of the attempt that ended it, retry backoff included)
// and handler time (finished_at - started_at), per route and tenant, per route, and in total
// (GROUPING SETS; level 0 = route and tenant, 1 = route, 7 = all).
inline constexpr const char* kLatency = R"SQL(
SELECT GROUPING(service, role, tenant) AS level, service, role, tenant, count(*) AS messages,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY wait) AS wait,
       avg(wait) AS wait_avg,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY handler) AS handler,
       avg(handler) AS handler_avg
FROM (SELECT service, role, tenant,
             extract(epoch FROM started_at - created_at)::float8 AS wait,
             extract(epoch FROM finished_at - started_at)::float8 AS handler
      FROM agent_messages
      WHERE finished_at >= now() - $1::float8 * interval '1 second' AND started_at IS NOT NULL
        AND ($2::text IS NULL OR tenant = $2)) m
GROUP BY GROUPING SETS ((service, role, tenant), (service, role), ())
ORDER BY level DESC, service, role, tenant)SQL";

// The latency rollup (sql/020). Windows whose start is more than an hour before the rollup's
// rolled_through read the whole hours between from bus_latency_hours and only the two partial
// edges from agent_messages (EXPLAINs in docs/metrics.md).
//
// $1 window s. The rolled-up span a window can use: from the first whole UTC hour in the window
// to rolled_through, in seconds since the epoch; no row when it holds no whole hour.
inline constexpr const char* kLatencyRolledSpan = R"SQL(
SELECT extract(epoch FROM x.first_hour)::float8, extract(epoch FROM s.rolled_through)::float8
FROM bus_latency_rollup_state s,
     LATERAL (SELECT date_bin(interval '1 hour', now() - $1::float8 * interval '1 second',
                              TIMESTAMPTZ '2000-01-01 00:00:00+00') + interval '1 hour' AS first_hour) x
WHERE s.rolled_through > x.first_hour)SQL";

// $1 window s, $2 tenant, $3 rolled span start, $4 its end (epoch s). Per route and tenant:
// kind 2 rows carry the message count and the sums of wait and handler seconds; kind 0 (wait)
// and 1 (handler) rows the count of each histogram bucket (cogo_latency_bucket). The edges are
// two ranges on finished_at, each found through agent_messages_finished; the hours come by the
// rollup's primary key.
inline constexpr const char* kLatencyFromRollup = R"SQL(
WITH edges AS (
  SELECT service, role, tenant, extract(epoch FROM started_at - created_at)::float8 AS wait,
         extract(epoch FROM finished_at - started_at)::float8 AS handler
  FROM agent_messages
  WHERE finished_at >= now() - $1::float8 * interval '1 second' AND finished_at < to_timestamp($3)
    AND started_at IS NOT NULL AND ($2::text IS NULL OR tenant = $2)
  UNION ALL
  SELECT service, role, tenant, extract(epoch FROM started_at - created_at)::float8,
         extract(epoch FROM finished_at - started_at)::float8
  FROM agent_messages
  WHERE finished_at >= to_timestamp($4) AND started_at IS NOT NULL AND ($2::text IS NULL OR tenant = $2)),
hours AS (
  SELECT * FROM bus_latency_hours
  WHERE hour >= to_timestamp($3) AND hour < to_timestamp($4) AND ($2::text IS NULL OR tenant = $2))
SELECT service, role, tenant, kind, bucket, sum(n)::bigint, sum(wait_sum)::float8, sum(handler_sum)::float8
FROM (SELECT service, role, tenant, 2 AS kind, 0 AS bucket, count(*) AS n, sum(wait) AS wait_sum,
             sum(handler) AS handler_sum
      FROM edges GROUP BY 1, 2, 3
      UNION ALL
      SELECT service, role, tenant, 2, 0, messages, wait_sum, handler_sum FROM hours
      UNION ALL
      SELECT service, role, tenant, 0, cogo_latency_bucket(wait), count(*), NULL, NULL FROM edges GROUP BY 1, 2, 3, 5
      UNION ALL
      SELECT service, role, tenant, 1, cogo_latency_bucket(handler), count(*), NULL, NULL FROM edges GROUP BY 1, 2, 3, 5
      UNION ALL
      SELECT h.service, h.role, h.tenant, 0, u.b, u.n, NULL, NULL
      FROM hours h, unnest(h.wait_buckets, h.wait_counts) AS u(b, n)
      UNION ALL
      SELECT h.service, h.role, h.tenant, 1, u.b, u.n, NULL, NULL
      FROM hours h, unnest(h.handler_buckets, h.handler_counts) AS u(b, n)) p
GROUP BY 1, 2, 3, 4, 5)SQL";

// The rollup's writer (the metrics server's periodic task, one at a time under its own
// advisory lock). An hour is rolled up once it ended kRollupSettle ago: a message's finished_at
// is its completing transaction's start, and those transactions are a single statement.
inline constexpr const char* kRollupLock = "SELECT pg_try_advisory_xact_lock(1668245301, 2)";
// The next hour to roll up, if it has settled: the one at rolled_through, or for a new rollup
// the hour 31 days back (the longest window and a day).
inline constexpr const char* kRollupNextHour = R"SQL(
SELECT extract(epoch FROM h)::float8
FROM (SELECT coalesce((SELECT rolled_through FROM bus_latency_rollup_state),
                      date_bin(interval '1 hour', now() - interval '31 days', TIMESTAMPTZ '2000-01-01 00:00:00+00')) AS h) x
WHERE h + interval '1 hour 2 minutes' <= now())SQL";
// $1 hour start (epoch s). One row per route and tenant of the messages that finished in it.
inline constexpr const char* kRollupHour = R"SQL(
INSERT INTO bus_latency_hours (hour, service, role, tenant, messages, wait_sum, handler_sum,
                               wait_buckets, wait_counts, handler_buckets, handler_counts)
WITH m AS (
  SELECT service, role, tenant, extract(epoch FROM started_at - created_at)::float8 AS wait,
         extract(epoch FROM finished_at - started_at)::float8 AS handler
  FROM agent_messages
  WHERE finished_at >= to_timestamp($1) AND finished_at < to_timestamp($1) + interval '1 hour'
    AND started_at IS NOT NULL),
totals AS (SELECT service, role, tenant, count(*) AS messages, sum(wait) AS wait_sum, sum(handler) AS handler_sum
           FROM m GROUP BY 1, 2, 3),
waits AS (SELECT service, role, tenant, array_agg(b ORDER BY b) AS buckets, array_agg(n ORDER BY b) AS counts
          FROM (SELECT service, role, tenant, cogo_latency_bucket(wait) AS b, count(*) AS n FROM m GROUP BY 1, 2, 3, 4) w
          GROUP BY 1, 2, 3),
handlers AS (SELECT service, role, tenant, array_agg(b ORDER BY b) AS buckets, array_agg(n ORDER BY b) AS counts
             FROM (SELECT service, role, tenant, cogo_latency_bucket(handler) AS b, count(*) AS n FROM m GROUP BY 1, 2, 3, 4) h
             GROUP BY 1, 2, 3)
SELECT to_timestamp($1), t.service, t.role, t.tenant, t.messages, t.wait_sum, t.handler_sum,
       w.buckets, w.counts, h.buckets, h.counts
FROM totals t JOIN waits w USING (service, role, tenant) JOIN handlers h USING (service, role, tenant))SQL";
// $1 the end of the hour just rolled up (epoch s).
inline constexpr const char* kRollupAdvance = R"SQL(
INSERT INTO bus_latency_rollup_state (singleton, rolled_through) VALUES (true, to_timestamp($1))
ON CONFLICT (singleton) DO UPDATE SET rolled_through = EXCLUDED.rolled_through)SQL";
// Hours no window reaches any more.
inline constexpr const char* kRollupPrune =
    "DELETE FROM bus_latency_hours WHERE hour < now() - interval '31 days'";

// $1 tenant. Live rows only, from the partial indexes that hold them: queued (due now or
// delayed by a retry backoff) with the lag (age of the oldest message due now, counted from
// when it became due), and running with the age of the oldest running attempt. Queued rows are
// read one branch per index (sql/022: ready, delayed): `status = 'queued'` alone matches neither
// index's predicate, and the planner would scan the whole table.
inline constexpr const char* kDepth = R"SQL(
WITH queued AS (
  SELECT service, role, count(*) AS queued,
         count(*) FILTER (WHERE retry_at > now()) AS delayed,
         extract(epoch FROM now() - min(greatest(created_at, coalesce(retry_at, created_at)))
                 FILTER (WHERE retry_at IS NULL OR retry_at <= now()))::float8 AS lag
  FROM (SELECT service, role, created_at, retry_at FROM agent_messages
        WHERE status = 'queued' AND retry_at IS NULL AND ($1::text IS NULL OR tenant = $1)
        UNION ALL
        SELECT service, role, created_at, retry_at FROM agent_messages
        WHERE status = 'queued' AND retry_at IS NOT NULL AND ($1::text IS NULL OR tenant = $1)) q
  GROUP BY service, role),
running AS (
  SELECT service, role, count(*) AS running,
         extract(epoch FROM now() - min(started_at))::float8 AS oldest_running
  FROM agent_messages
  WHERE lease_expires_at IS NOT NULL AND status = 'running' AND ($1::text IS NULL OR tenant = $1)
  GROUP BY service, role)
SELECT coalesce(q.service, r.service) AS service, coalesce(q.role, r.role) AS role,
       coalesce(q.queued, 0), coalesce(q.delayed, 0), greatest(coalesce(q.lag, 0), 0),
       coalesce(r.running, 0), greatest(coalesce(r.oldest_running, 0), 0)
FROM queued q FULL JOIN running r ON r.service = q.service AND r.role = q.role
ORDER BY 1, 2)SQL";

// $1 window s, $2 bucket s, $3 tenant. Attempt outcomes per bucket and route from the trail:
// completed, failed (for good), dead_lettered (retries spent), retry_scheduled. Buckets are
// aligned to the bucket width since 2000-01-01 UTC, so the same bucket is the same interval in
// every query.
inline constexpr const char* kFailureTrend = R"SQL(
SELECT extract(epoch FROM date_bin($2::float8 * interval '1 second', at, TIMESTAMPTZ '2000-01-01 00:00:00+00'))::bigint,
       service, role,
       count(*) FILTER (WHERE event = 'completed'),
       count(*) FILTER (WHERE event = 'failed'),
       count(*) FILTER (WHERE event = 'dead_lettered'),
       count(*) FILTER (WHERE event = 'retry_scheduled')
FROM bus_events
WHERE at >= now() - $1::float8 * interval '1 second'
  AND event IN ('completed', 'failed', 'dead_lettered', 'retry_scheduled')
  AND ($3::text IS NULL OR tenant = $3)
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3)SQL";

// $1 window s, $2 tenant. Failed attempts per route, event and reason. The reason is the
// machine-readable code: a reclaim's `reason`, else the error text up to its first ':' (cogo's
// failure messages begin with their code), at most 64 characters.
inline constexpr const char* kFailureReasons = R"SQL(
SELECT service, role, event,
       left(coalesce(detail->>'reason', nullif(split_part(detail->>'error', ':', 1), ''), 'unknown'), 64) AS reason,
       count(*) AS n
FROM bus_events
WHERE at >= now() - $1::float8 * interval '1 second'
  AND event IN ('failed', 'dead_lettered', 'retry_scheduled')
  AND ($2::text IS NULL OR tenant = $2)
GROUP BY 1, 2, 3, 4 ORDER BY n DESC, 1, 2, 3, 4 LIMIT 200)SQL";

// $1 window s, $2 tenant. Tokens and USD per UTC day, tenant, agent and model.
inline constexpr const char* kSpend = R"SQL(
SELECT to_char(date_trunc('day', recorded_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, tenant,
       coalesce(agent_id, ''), coalesce(model, ''), count(*), sum(input_tokens), sum(output_tokens),
       sum(cost_usd)::float8
FROM message_usage
WHERE recorded_at >= now() - $1::float8 * interval '1 second' AND ($2::text IS NULL OR tenant = $2)
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4)SQL";

// $1 tenant. Spent since the start of the UTC day (database clock), per tenant: the executor's
// own measure against the daily cap (src/executor/statements.h).
inline constexpr const char* kSpentToday = R"SQL(
SELECT tenant, sum(cost_usd)::float8 FROM message_usage
WHERE recorded_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
  AND ($1::text IS NULL OR tenant = $1)
GROUP BY tenant ORDER BY tenant)SQL";

// $1 window s, $2 tenant. Decision quality as docs/decision-quality.md defines it, from the
// view decision_outcomes (sql/016: a decision is correct when its execution reached done and no
// feedback says otherwise, judged unless pending or unknown), for decisions taken in the window
// (the view's decisions.decided_at: decisions_decided_brin). Per agent, version and intent
// (level 0), per agent (level 3), and in total (level 7).
inline constexpr const char* kDecisions = R"SQL(
SELECT GROUPING(agent_id, version, intent) AS level, agent_id, version, intent, count(*),
       count(correct), count(*) FILTER (WHERE correct), count(*) FILTER (WHERE outcome = 'pending'),
       count(feedback_correct), count(*) FILTER (WHERE canary)
FROM decision_outcomes
WHERE decided_at >= now() - $1::float8 * interval '1 second' AND ($2::text IS NULL OR tenant = $2)
GROUP BY GROUPING SETS ((agent_id, version, intent), (agent_id), ())
ORDER BY level DESC, agent_id, version, intent)SQL";

// $1 window s, $2 tenant, $3 workflow id or NULL. Runs started in the window per workflow and
// status.
inline constexpr const char* kWorkflowRuns = R"SQL(
SELECT workflow_id, status, count(*)
FROM workflow_runs
WHERE created_at >= now() - $1::float8 * interval '1 second' AND ($2::text IS NULL OR tenant = $2)
  AND ($3::text IS NULL OR workflow_id = $3)
GROUP BY 1, 2 ORDER BY 1, 2)SQL";

// The same runs' durations (created -> finished), over every finished run of a workflow.
inline constexpr const char* kWorkflowDurations = R"SQL(
SELECT workflow_id, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
         ORDER BY extract(epoch FROM finished_at - created_at)::float8)
FROM workflow_runs
WHERE created_at >= now() - $1::float8 * interval '1 second' AND finished_at IS NOT NULL
  AND ($2::text IS NULL OR tenant = $2) AND ($3::text IS NULL OR workflow_id = $3)
GROUP BY 1)SQL";

// $1 window s, $2 tenant, $3 workflow id or NULL. Gate verdicts of runs started in the window.
inline constexpr const char* kWorkflowGates = R"SQL(
SELECT r.workflow_id, count(*) FILTER (WHERE s.output->>'verdict' = 'pass'),
       count(*) FILTER (WHERE s.output->>'verdict' = 'fail')
FROM workflow_runs r JOIN workflow_steps s ON s.run_id = r.id AND s.node_type = 'gate'
WHERE r.created_at >= now() - $1::float8 * interval '1 second' AND ($2::text IS NULL OR r.tenant = $2)
  AND ($3::text IS NULL OR r.workflow_id = $3)
GROUP BY 1 ORDER BY 1)SQL";

// $1 tenant, $2 workflow id or NULL, $3 limit. The newest runs (primary key or the
// (tenant, id) index, backwards) with their gate verdicts and their steps' result URLs. The
// steps are read by run (OFFSET 0 keeps that subquery apart: joined directly, the planner walked
// the whole workflow_steps_message index for each run).
inline constexpr const char* kRecentRuns = R"SQL(
SELECT r.id, r.tenant, r.workflow_id, r.version, r.status, coalesce(r.reason, ''),
       extract(epoch FROM r.created_at)::float8, extract(epoch FROM r.finished_at)::float8,
       coalesce(r.parameters->>'taskId', ''),
       coalesce((SELECT jsonb_agg(jsonb_build_object('node', s.node, 'activation', s.activation,
                                                     'verdict', s.output->'verdict') ORDER BY s.seq)
                 FROM workflow_steps s WHERE s.run_id = r.id AND s.node_type = 'gate'), '[]')::text,
       coalesce((SELECT jsonb_agg(jsonb_build_object('node', s.node, 'url', m.result_url) ORDER BY s.seq)
                 FROM (SELECT node, seq, message_id FROM workflow_steps
                       WHERE run_id = r.id AND message_id IS NOT NULL OFFSET 0) s
                 JOIN agent_messages m ON m.id = s.message_id
                 WHERE nullif(m.result_url, '') IS NOT NULL), '[]')::text
FROM workflow_runs r
WHERE ($1::text IS NULL OR r.tenant = $1) AND ($2::text IS NULL OR r.workflow_id = $2)
ORDER BY r.id DESC LIMIT $3)SQL";

// $1 workflow id.
inline constexpr const char* kWorkflowKnown = R"SQL(
SELECT EXISTS (SELECT 1 FROM workflow_definitions WHERE workflow_id = $1))SQL";

// Alert samples, one statement per metric: key, value, count. $1 window s.
inline constexpr const char* kSampleFailureRate = R"SQL(
SELECT service || '/' || role,
       (count(*) FILTER (WHERE event <> 'completed'))::float8 / count(*), count(*)
FROM bus_events
WHERE at >= now() - $1::float8 * interval '1 second' AND event IN ('completed', 'failed', 'dead_lettered')
GROUP BY service, role)SQL";
inline constexpr const char* kSampleAvgWait = R"SQL(
SELECT service || '/' || role, avg(extract(epoch FROM started_at - created_at))::float8, count(*)
FROM agent_messages
WHERE finished_at >= now() - $1::float8 * interval '1 second' AND started_at IS NOT NULL
GROUP BY service, role)SQL";
inline constexpr const char* kSampleLag = R"SQL(
SELECT service || '/' || role,
       greatest(extract(epoch FROM now() - min(greatest(created_at, coalesce(retry_at, created_at))))::float8, 0),
       count(*)
FROM agent_messages
WHERE status = 'queued' AND (retry_at IS NULL OR retry_at <= now()) AND $1::float8 IS NOT NULL
GROUP BY service, role)SQL";
inline constexpr const char* kSampleDeadLetters = R"SQL(
SELECT service || '/' || role, count(*)::float8, count(*)
FROM bus_events
WHERE at >= now() - $1::float8 * interval '1 second' AND event = 'dead_lettered'
GROUP BY service, role)SQL";

// The evaluator's state. One evaluator writes at a time: it holds this transaction-scoped
// advisory lock (its own class) while it reads the firing alerts and records what changed.
inline constexpr const char* kEvaluatorLock = "SELECT pg_try_advisory_xact_lock(1668245301, 1)";
inline constexpr const char* kFiringKeys = "SELECT rule, key FROM alert_states";
// $1 rule, $2 key, $3 severity, $4 value, $5 threshold, $6 samples.
inline constexpr const char* kUpsertFiring = R"SQL(
INSERT INTO alert_states (rule, key, severity, value, threshold, samples)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (rule, key) DO UPDATE
SET severity = EXCLUDED.severity, value = EXCLUDED.value, threshold = EXCLUDED.threshold,
    samples = EXCLUDED.samples, updated_at = now())SQL";
// $1 rule, $2 key.
inline constexpr const char* kResolve = "DELETE FROM alert_states WHERE rule = $1 AND key = $2";
// $1 rule, $2 key, $3 state, $4 value, $5 threshold, $6 severity, $7 the workflow to send it
// through or NULL.
inline constexpr const char* kRecordTransition = R"SQL(
INSERT INTO alert_transitions (rule, key, state, value, threshold, severity, notify_workflow)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id)SQL";

// The outbox (sql/020), through its partial index alert_transitions_unsent.
inline constexpr const char* kUnsentTransitions = R"SQL(
SELECT id, rule, key, state, value, threshold, severity,
       to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), notify_workflow, notify_attempts
FROM alert_transitions WHERE notify_workflow IS NOT NULL AND notified_at IS NULL
ORDER BY id LIMIT 50)SQL";
// $1 id, $2 run id.
inline constexpr const char* kTransitionSent = R"SQL(
UPDATE alert_transitions
SET notify_run_id = $2, notify_attempts = notify_attempts + 1, notify_error = NULL, notified_at = now()
WHERE id = $1)SQL";
// $1 id, $2 error, $3 given up (no more attempts).
inline constexpr const char* kTransitionNotSent = R"SQL(
UPDATE alert_transitions
SET notify_attempts = notify_attempts + 1, notify_error = $2, notified_at = CASE WHEN $3 THEN now() END
WHERE id = $1)SQL";

// The alerts API: firing alerts, and the latest transitions ($1 limit).
inline constexpr const char* kActiveAlerts = R"SQL(
SELECT rule, key, severity, value, threshold, samples, extract(epoch FROM since)::float8,
       extract(epoch FROM updated_at)::float8
FROM alert_states ORDER BY severity, rule, key)SQL";
inline constexpr const char* kRecentTransitions = R"SQL(
SELECT id, rule, key, state, value, threshold, severity, extract(epoch FROM at)::float8, notify_workflow,
       notify_run_id, notify_error, notified_at IS NOT NULL
FROM alert_transitions ORDER BY id DESC LIMIT $1)SQL";

}  // namespace cogo::metrics::sql
