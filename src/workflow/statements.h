// Every SQL statement of the workflow engine, named once (sql/008_workflows.sql). Run rows are
// locked FOR UPDATE by whoever changes them (the engine's advance, the API's cancel), so one
// run's changes are serialised while different runs advance in parallel.
#pragma once

namespace cogo::workflow::sql {

// $1 workflow_id, $2 digest, $3 definition. The version is the next for the id; a digest seen
// before returns its version (an unchanged file is not a new version).
inline constexpr const char* kRegisterDefinition = R"SQL(
WITH existing AS (SELECT version FROM workflow_definitions WHERE digest = $2),
inserted AS (
  INSERT INTO workflow_definitions (workflow_id, version, digest, definition)
  SELECT $1, coalesce((SELECT max(version) FROM workflow_definitions WHERE workflow_id = $1), 0) + 1,
         $2, $3::jsonb
  WHERE NOT EXISTS (SELECT 1 FROM existing)
  RETURNING version)
SELECT version FROM existing UNION ALL SELECT version FROM inserted)SQL";

// $1 workflow_id, $2 version.
inline constexpr const char* kDefinitionByVersion = R"SQL(
SELECT definition::text FROM workflow_definitions WHERE workflow_id = $1 AND version = $2)SQL";

// $1 tenant, $2 workflow_id, $3 version, $4 parameters, $5 max_cost_usd or NULL, $6 max_tokens or
// NULL, $7 idempotency key or NULL. Returns nothing when the key names an existing run.
inline constexpr const char* kInsertRun = R"SQL(
INSERT INTO workflow_runs (tenant, workflow_id, version, parameters, max_cost_usd, max_tokens,
                           idempotency_key)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)
ON CONFLICT (tenant, workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id)SQL";

// $1 tenant, $2 workflow_id, $3 idempotency key.
inline constexpr const char* kRunByKey = R"SQL(
SELECT id FROM workflow_runs WHERE tenant = $1 AND workflow_id = $2 AND idempotency_key = $3)SQL";

// $1 run id. The engine's and the API's lock on a run.
inline constexpr const char* kLockRun = R"SQL(
SELECT tenant, workflow_id, version, status, parameters::text, cursor_node,
       coalesce(cursor_activation, 0), max_cost_usd::float8, max_tokens,
       (extract(epoch FROM now()) * 1000)::bigint
FROM workflow_runs WHERE id = $1 FOR UPDATE)SQL";

// $1 run id (its row already locked by kLockRun: a statement of its own, so this one's snapshot
// sees every advance committed before the lock was granted), $2 the step message an event
// reports, or NULL. One row, in one round trip: the latest activation of every node (JSON),
// the budget the run has used (usage of its step messages, and what its running steps hold),
// its unconsumed signals (JSON), and how the step message ended and what it spent.
inline constexpr const char* kLoadRunState = R"SQL(
SELECT
  (SELECT coalesce(jsonb_agg(jsonb_build_array(
              node, activation, status, output, coalesce(error, ''),
              (extract(epoch FROM started_at) * 1000)::bigint,
              CASE WHEN status = 'running' THEN reserved_usd ELSE 0 END,
              CASE WHEN status = 'running' THEN reserved_tokens ELSE 0 END)), '[]')
   FROM (SELECT DISTINCT ON (node) node, activation, status, output, error, started_at, reserved_usd,
                reserved_tokens
         FROM workflow_steps WHERE run_id = $1 ORDER BY node, activation DESC) latest)::text,
  coalesce((SELECT sum(u.cost_usd) FROM message_usage u
            JOIN workflow_steps s ON s.message_id = u.message_id WHERE s.run_id = $1), 0)::float8,
  coalesce((SELECT sum(u.input_tokens + u.output_tokens) FROM message_usage u
            JOIN workflow_steps s ON s.message_id = u.message_id WHERE s.run_id = $1), 0)::bigint,
  coalesce((SELECT sum(reserved_usd) FROM workflow_steps
            WHERE run_id = $1 AND status = 'running'), 0)::float8,
  coalesce((SELECT sum(reserved_tokens) FROM workflow_steps
            WHERE run_id = $1 AND status = 'running'), 0)::bigint,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(id, name, data, (extract(epoch FROM created_at) * 1000)::bigint)
                             ORDER BY id), '[]')
   FROM workflow_signals WHERE run_id = $1 AND consumed_at IS NULL)::text,
  m.status, m.result::text, coalesce(m.last_error, ''),
  coalesce((SELECT sum(cost_usd) FROM message_usage WHERE message_id = $2), 0)::float8,
  coalesce((SELECT sum(input_tokens + output_tokens) FROM message_usage WHERE message_id = $2), 0)::bigint
FROM (SELECT 1) one LEFT JOIN agent_messages m ON m.id = $2)SQL";

// A transition's writes to the run's tables in one statement. $1 run id; $2 new step rows
// [{node, activation, node_type, status, input, message_id, reserved_usd, reserved_tokens,
// output, error, finished}] (a step that also finished in this transition is inserted
// finished); $3 steps that finish [{node, activation, status, output, error}] (only an open
// step finishes: its outcome is recorded once); $4 signals consumed [{id, by}]; the run's row:
// $5 cursor node, $6 cursor activation (NULL: unchanged), $7 status (NULL: unchanged), $8
// reason, $9 finished. Every CTE runs to completion though nothing reads it; they share one
// snapshot, so each row is written by one of them only (the caller folds a step's start and
// finish, and the cursor and the end).
inline constexpr const char* kApplyTransition = R"SQL(
WITH started AS (
  INSERT INTO workflow_steps (run_id, node, activation, node_type, status, input, message_id,
                              reserved_usd, reserved_tokens, output, error, finished_at)
  SELECT $1, s.node, s.activation, s.node_type, s.status, s.input, s.message_id, s.reserved_usd,
         s.reserved_tokens, s.output, s.error, CASE WHEN s.finished THEN now() END
  FROM ROWS FROM (jsonb_to_recordset($2::jsonb)
                  AS (node text, activation integer, node_type text, status text, input jsonb,
                      message_id bigint, reserved_usd float8, reserved_tokens bigint, output jsonb,
                      error text, finished boolean)) WITH ORDINALITY AS s
  ORDER BY s.ordinality),
finished AS (
  UPDATE workflow_steps w SET status = f.status, output = f.output, error = f.error, finished_at = now()
  FROM jsonb_to_recordset($3::jsonb) AS f(node text, activation integer, status text, output jsonb, error text)
  WHERE w.run_id = $1 AND w.node = f.node AND w.activation = f.activation
    AND w.status IN ('running', 'waiting')),
consumed AS (
  UPDATE workflow_signals g SET consumed_at = now(), consumed_by = c.by
  FROM jsonb_to_recordset($4::jsonb) AS c(id bigint, by text)
  WHERE g.id = c.id AND g.consumed_at IS NULL),
moved AS (
  UPDATE workflow_runs SET cursor_node = coalesce($5, cursor_node),
                           cursor_activation = coalesce($6, cursor_activation),
                           status = coalesce($7, status),
                           reason = CASE WHEN $9 THEN $8 ELSE reason END,
                           finished_at = CASE WHEN $9 THEN now() ELSE finished_at END,
                           updated_at = now()
  WHERE id = $1)
SELECT 1)SQL";

// $1 run, $2 status, $3 reason or NULL.
inline constexpr const char* kFinishRun = R"SQL(
UPDATE workflow_runs SET status = $2, reason = $3, finished_at = now(), updated_at = now()
WHERE id = $1)SQL";

// $1 run, $2 name, $3 data.
inline constexpr const char* kInsertSignal = R"SQL(
INSERT INTO workflow_signals (run_id, name, data) VALUES ($1, $2, $3::jsonb) RETURNING id)SQL";

// $1 run: its steps' open rows become cancelled; returns the live messages to cancel.
inline constexpr const char* kCancelSteps = R"SQL(
UPDATE workflow_steps SET status = 'cancelled', finished_at = now(), error = 'cancelled'
WHERE run_id = $1 AND status IN ('running', 'waiting'))SQL";
inline constexpr const char* kLiveMessages = R"SQL(
SELECT id FROM agent_messages
WHERE correlation_id = 'wf:' || $1::text AND status IN ('queued', 'running') ORDER BY id)SQL";

// $1 'wf:<run id>': the run's first message (its start).
inline constexpr const char* kStartMessage = R"SQL(
SELECT min(id) FROM agent_messages WHERE correlation_id = $1)SQL";

// $1 run id: the run, its steps in order, and the trail of all its messages.
inline constexpr const char* kRunView = R"SQL(
SELECT jsonb_build_object(
  'runId', r.id, 'tenant', r.tenant, 'workflowId', r.workflow_id, 'version', r.version,
  'status', r.status, 'reason', r.reason, 'parameters', r.parameters,
  'cursor', r.cursor_node, 'maxCostUsd', r.max_cost_usd, 'maxTokens', r.max_tokens,
  'createdAt', r.created_at, 'updatedAt', r.updated_at, 'finishedAt', r.finished_at,
  'steps', coalesce((SELECT jsonb_agg(jsonb_build_object(
      'node', s.node, 'activation', s.activation, 'type', s.node_type, 'status', s.status,
      'input', s.input, 'output', s.output, 'error', s.error, 'messageId', s.message_id,
      'startedAt', s.started_at, 'finishedAt', s.finished_at) ORDER BY s.seq)
    FROM workflow_steps s WHERE s.run_id = r.id), '[]'),
  'gates', coalesce((SELECT jsonb_agg(jsonb_build_object(
      'node', s.node, 'activation', s.activation, 'verdict', s.output->'verdict',
      'checks', s.output->'checks', 'at', s.finished_at) ORDER BY s.seq)
    FROM workflow_steps s WHERE s.run_id = r.id AND s.node_type = 'gate'), '[]'),
  'signals', coalesce((SELECT jsonb_agg(jsonb_build_object(
      'id', g.id, 'name', g.name, 'createdAt', g.created_at, 'consumedBy', g.consumed_by)
      ORDER BY g.id) FROM workflow_signals g WHERE g.run_id = r.id), '[]'),
  'events', coalesce((SELECT jsonb_agg(jsonb_build_object(
      'messageId', e.message_id, 'event', e.event, 'route', e.service || '/' || e.role,
      'at', e.at, 'detail', e.detail) ORDER BY e.at, e.ord, e.id)
    FROM bus_trail e WHERE e.message_id IN (
      SELECT id FROM agent_messages WHERE correlation_id = 'wf:' || r.id::text)), '[]'))::text
FROM workflow_runs r WHERE r.id = $1)SQL";

// $1 tenant or NULL (all), $2 workflow_id or NULL, $3 status or NULL, $4 before id (keyset; NULL
// = from the newest), $5 limit.
inline constexpr const char* kListRuns = R"SQL(
SELECT coalesce(jsonb_agg(x ORDER BY x."runId" DESC), '[]')::text FROM (
  SELECT id AS "runId", tenant, workflow_id AS "workflowId", version, status, reason,
         created_at AS "createdAt", finished_at AS "finishedAt"
  FROM workflow_runs
  WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR workflow_id = $2)
    AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR id < $4)
  ORDER BY id DESC LIMIT $5) x)SQL";

// Runs per workflow and status ($1 tenant or NULL).
inline constexpr const char* kRunCounts = R"SQL(
SELECT coalesce(jsonb_object_agg(workflow_id, counts), '{}')::text FROM (
  SELECT workflow_id, jsonb_object_agg(status, n) AS counts FROM (
    SELECT workflow_id, status, count(*) AS n FROM workflow_runs
    WHERE $1::text IS NULL OR tenant = $1 GROUP BY workflow_id, status) c
  GROUP BY workflow_id) w)SQL";

// Live runs that nothing will advance: no queued or running message of the run (every open Wait
// and Retry has a timer message, every running step a message), unchanged for $2 seconds.
// $1 tenant or NULL.
inline constexpr const char* kStuckRuns = R"SQL(
SELECT coalesce(jsonb_agg(jsonb_build_object('runId', r.id, 'tenant', r.tenant,
                          'workflowId', r.workflow_id, 'status', r.status,
                          'cursor', r.cursor_node, 'updatedAt', r.updated_at) ORDER BY r.id), '[]')::text
FROM workflow_runs r
WHERE r.status IN ('running', 'waiting') AND ($1::text IS NULL OR r.tenant = $1)
  AND r.updated_at < now() - $2::float8 * interval '1 second'
  AND NOT EXISTS (SELECT 1 FROM agent_messages m
                  WHERE m.correlation_id = 'wf:' || r.id::text AND m.status IN ('queued', 'running')))SQL";

// $1 run id: which workflow (and version) a run is, and whose, without locking it.
inline constexpr const char* kRunWorkflow = R"SQL(
SELECT tenant, workflow_id, version FROM workflow_runs WHERE id = $1)SQL";

}  // namespace cogo::workflow::sql
