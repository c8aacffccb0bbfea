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

// $1 run id: the latest activation of every node, and the budget the run has used: usage of its
// step messages, and what its running steps hold.
inline constexpr const char* kLatestSteps = R"SQL(
SELECT DISTINCT ON (node) node, activation, status, output::text, coalesce(error, ''),
       (extract(epoch FROM started_at) * 1000)::bigint
FROM workflow_steps WHERE run_id = $1 ORDER BY node, activation DESC)SQL";

inline constexpr const char* kRunBudget = R"SQL(
SELECT
  coalesce((SELECT sum(u.cost_usd) FROM message_usage u
            JOIN workflow_steps s ON s.message_id = u.message_id WHERE s.run_id = $1), 0)::float8,
  coalesce((SELECT sum(u.input_tokens + u.output_tokens) FROM message_usage u
            JOIN workflow_steps s ON s.message_id = u.message_id WHERE s.run_id = $1), 0)::bigint,
  coalesce((SELECT sum(reserved_usd) FROM workflow_steps
            WHERE run_id = $1 AND status = 'running'), 0)::float8,
  coalesce((SELECT sum(reserved_tokens) FROM workflow_steps
            WHERE run_id = $1 AND status = 'running'), 0)::bigint)SQL";

// $1 run id.
inline constexpr const char* kOpenSignals = R"SQL(
SELECT id, name, data::text, (extract(epoch FROM created_at) * 1000)::bigint
FROM workflow_signals WHERE run_id = $1 AND consumed_at IS NULL ORDER BY id)SQL";

// $1 message id: how a step's message ended and what it spent.
inline constexpr const char* kStepMessage = R"SQL(
SELECT m.status, m.result::text, coalesce(m.last_error, ''),
       coalesce((SELECT sum(cost_usd) FROM message_usage WHERE message_id = m.id), 0)::float8,
       coalesce((SELECT sum(input_tokens + output_tokens) FROM message_usage
                 WHERE message_id = m.id), 0)::bigint
FROM agent_messages m WHERE m.id = $1)SQL";

// $1 run, $2 node, $3 activation, $4 node type, $5 status, $6 input or NULL, $7 message id or
// NULL, $8 reserved usd, $9 reserved tokens.
inline constexpr const char* kInsertStep = R"SQL(
INSERT INTO workflow_steps (run_id, node, activation, node_type, status, input, message_id,
                            reserved_usd, reserved_tokens)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9))SQL";

// $1 run, $2 node, $3 activation, $4 status, $5 output or NULL, $6 error or NULL. Only an open
// step finishes: its outcome is recorded once.
inline constexpr const char* kFinishStep = R"SQL(
UPDATE workflow_steps SET status = $4, output = $5::jsonb, error = $6, finished_at = now()
WHERE run_id = $1 AND node = $2 AND activation = $3 AND status IN ('running', 'waiting'))SQL";

// $1 run, $2 node, $3 activation, $4 status.
inline constexpr const char* kMoveCursor = R"SQL(
UPDATE workflow_runs SET cursor_node = $2, cursor_activation = $3, status = $4, updated_at = now()
WHERE id = $1)SQL";

// $1 run, $2 status, $3 reason or NULL.
inline constexpr const char* kFinishRun = R"SQL(
UPDATE workflow_runs SET status = $2, reason = $3, finished_at = now(), updated_at = now()
WHERE id = $1)SQL";

// $1 signal id, $2 'node#activation'.
inline constexpr const char* kConsumeSignal = R"SQL(
UPDATE workflow_signals SET consumed_at = now(), consumed_by = $2
WHERE id = $1 AND consumed_at IS NULL)SQL";

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
      'at', e.at, 'detail', e.detail) ORDER BY e.id)
    FROM bus_events e WHERE e.message_id IN (
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

}  // namespace cogo::workflow::sql
