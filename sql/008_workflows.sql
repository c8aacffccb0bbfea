-- 008: durable workflows. A run is a graph interpreter's state in tables; it advances only in
-- handlers of the bus route (orchestrator, workflow), each advance one transaction that
-- consumes the message that caused it and publishes the messages it causes (a transactional
-- outbox). Every message of a run carries correlation_id 'wf:<run id>', so one index lookup
-- finds a run's messages and their bus_events.

-- Definitions are immutable and content-addressed: a run pins (workflow_id, version) and an
-- edited file becomes a new version, never a change to running runs.
CREATE TABLE workflow_definitions (
  workflow_id text        NOT NULL CHECK (workflow_id <> ''),
  version     integer     NOT NULL CHECK (version > 0),
  digest      text        NOT NULL UNIQUE,  -- sha256 of the canonical JSON
  definition  jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, version)
);

CREATE TABLE workflow_runs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant           text        NOT NULL CHECK (tenant <> ''),
  workflow_id      text        NOT NULL,
  version          integer     NOT NULL,
  status           text        NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'waiting', 'succeeded', 'failed', 'cancelled',
                                     'timed_out')),
  reason           text,       -- why a run that did not succeed ended (gate_failed, ...)
  parameters       jsonb       NOT NULL,
  cursor_node      text,       -- the node the run stands on (NULL before its start message)
  cursor_activation integer,
  max_cost_usd     numeric(16,8) CHECK (max_cost_usd > 0),  -- NULL: no run budget
  max_tokens       bigint      CHECK (max_tokens > 0),
  idempotency_key  text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  FOREIGN KEY (workflow_id, version) REFERENCES workflow_definitions
);
CREATE UNIQUE INDEX workflow_runs_idempotency ON workflow_runs (tenant, workflow_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- Listing is keyset-paginated by id, per tenant; live runs are scanned by the stuck-run check.
CREATE INDEX workflow_runs_tenant ON workflow_runs (tenant, id);
CREATE INDEX workflow_runs_live ON workflow_runs (updated_at) WHERE status IN ('running', 'waiting');

-- One row per activation of a node (its n-th entry: retries and loops enter a node again). The
-- primary key records each step's outcome exactly once.
CREATE TABLE workflow_steps (
  seq          bigint GENERATED ALWAYS AS IDENTITY,  -- the order steps began (one transaction
                                                     -- may start several at the same now())
  run_id       bigint      NOT NULL REFERENCES workflow_runs ON DELETE CASCADE,
  node         text        NOT NULL,
  activation   integer     NOT NULL CHECK (activation > 0),
  node_type    text        NOT NULL,
  status       text        NOT NULL
               CHECK (status IN ('running', 'waiting', 'succeeded', 'failed', 'timed_out',
                                 'cancelled')),
  input        jsonb,
  output       jsonb,
  error        text,
  message_id   bigint,     -- the bus message carrying a publish or notify step's work
  reserved_usd numeric(16,8) NOT NULL DEFAULT 0,  -- budget handed to the step's assignment
  reserved_tokens bigint   NOT NULL DEFAULT 0,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  PRIMARY KEY (run_id, node, activation)
);
CREATE UNIQUE INDEX workflow_steps_message ON workflow_steps (message_id) WHERE message_id IS NOT NULL;

-- External events delivered to a run (approvals, callbacks). Kept even when no wait is open
-- yet, so a Wait entered shortly after still sees it (its lookback window).
CREATE TABLE workflow_signals (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id      bigint      NOT NULL REFERENCES workflow_runs ON DELETE CASCADE,
  name        text        NOT NULL,
  data        jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  consumed_at timestamptz,
  consumed_by text        -- node:activation of the wait that took it
);
CREATE INDEX workflow_signals_open ON workflow_signals (run_id, name, id) WHERE consumed_at IS NULL;

-- A step's message reaching a final state publishes the advance of its run in the same
-- transaction, so no completion can be lost between "worker done" and "engine told". Messages
-- that are not steps (timers, advances, plain bus traffic) find no step row and write nothing;
-- the WHEN clause keeps the trigger off every message that is not a run's.
CREATE FUNCTION cogo_workflow_step_finished() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  step record;
BEGIN
  SELECT run_id, node, activation INTO step FROM workflow_steps WHERE message_id = NEW.id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  INSERT INTO agent_messages (service, role, shard, tenant, payload, max_attempts,
                              idempotency_key, correlation_id)
  VALUES ('orchestrator', 'workflow', 0, NEW.tenant,
          jsonb_build_object('kind', 'step_finished', 'run_id', step.run_id, 'node', step.node,
                             'activation', step.activation, 'message_id', NEW.id),
          10, 'wf-step-finished:' || NEW.id, NEW.correlation_id)
  ON CONFLICT (service, role, tenant, idempotency_key) WHERE idempotency_key IS NOT NULL
  DO NOTHING;
  IF FOUND THEN
    PERFORM cogo_wake('orchestrator', 'workflow', 0);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER agent_messages_workflow_step AFTER UPDATE OF status ON agent_messages
  FOR EACH ROW WHEN (NEW.correlation_id LIKE 'wf:%'
                     AND NEW.status IN ('done', 'failed', 'dead', 'cancelled')
                     AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION cogo_workflow_step_finished();
