-- 001: the bus. agent_messages holds every message; bus_events is its audit trail;
-- bus_workers lists live workers and which of them are idle (waiting for work).

CREATE TABLE agent_messages (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  service          text        NOT NULL CHECK (service <> ''),
  role             text        NOT NULL CHECK (role <> ''),
  shard            integer     NOT NULL DEFAULT 0 CHECK (shard >= 0),
  tenant           text        NOT NULL CHECK (tenant <> ''),
  payload          jsonb       NOT NULL,
  status           text        NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed', 'dead', 'cancelled')),
  priority         smallint    NOT NULL DEFAULT 0,
  attempts         integer     NOT NULL DEFAULT 0,
  max_attempts     integer     NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
  retry_at         timestamptz,
  lease_owner      text,
  lease_expires_at timestamptz,
  last_error       text,
  last_error_at    timestamptz,
  result           jsonb,
  result_snippet   text,
  result_url       text,
  idempotency_key  text,
  correlation_id   text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz
);

-- Claims read only queued rows: keep that index small and in claim order.
CREATE INDEX agent_messages_queued ON agent_messages (service, role, shard, priority DESC, id)
  WHERE status = 'queued';
-- The reclaimer scans running rows by lease expiry.
CREATE INDEX agent_messages_running_lease ON agent_messages (lease_expires_at)
  WHERE status = 'running';
-- Retention walks finished rows by age. Rows finish roughly in insertion order, so a BRIN
-- index serves that walk at a fraction of a B-tree's cost on every completion.
CREATE INDEX agent_messages_finished ON agent_messages USING brin (finished_at);
-- A repeated publish with the same key returns the first message.
CREATE UNIQUE INDEX agent_messages_idempotency ON agent_messages (service, role, tenant, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX agent_messages_correlation ON agent_messages (correlation_id)
  WHERE correlation_id IS NOT NULL;

-- Append-only; read by message (the trail) and pruned by age. No primary-key index: nothing
-- looks an event up by id, and two index inserts per message are saved on the hot path.
CREATE TABLE bus_events (
  id         bigint GENERATED ALWAYS AS IDENTITY,
  message_id bigint      NOT NULL,
  event      text        NOT NULL,
  service    text        NOT NULL,
  role       text        NOT NULL,
  tenant     text        NOT NULL,
  at         timestamptz NOT NULL DEFAULT now(),
  detail     jsonb
);
CREATE INDEX bus_events_message ON bus_events (message_id, id);
CREATE INDEX bus_events_at ON bus_events USING brin (at);  -- append-only: BRIN is enough

CREATE TABLE bus_workers (
  worker_id  text PRIMARY KEY,
  service    text        NOT NULL,
  role       text        NOT NULL,
  shards     integer[]   NOT NULL,
  host       text        NOT NULL,
  pid        integer     NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_seen  timestamptz NOT NULL DEFAULT now(),
  idle       boolean     NOT NULL DEFAULT false
);
CREATE INDEX bus_workers_idle ON bus_workers (service, role) WHERE idle;

-- Wake-ups. A NOTIFY serialises every committing transaction that sends one, so the bus sends
-- one only when a live worker of the route is idle, and clears the idle flags it acts on: one
-- NOTIFY per idle period, not one per message. Busy workers never need one: they claim again
-- as soon as they have room; a woken worker that finds nothing marks itself idle again. The
-- lost-wake-up race (a producer checks before a worker's
-- idle flag commits, and commits after the worker's re-check) is closed by a lock: producers
-- hold a shared per-route advisory lock until they commit, and a worker going idle takes it
-- exclusively once, after committing its flag and before its re-check, so every producer that
-- missed the flag has committed by then and the re-check sees its row.
CREATE FUNCTION cogo_route_lock_key(service text, role text) RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT hashtext(service || '/' || role) $$;

CREATE FUNCTION cogo_wake_route(p_service text, p_role text, p_shard integer) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  any_woken boolean;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(1668245295, cogo_route_lock_key(p_service, p_role));
  WITH woken AS (
    UPDATE bus_workers w SET idle = false
    WHERE w.idle AND w.service = p_service AND w.role = p_role
      AND p_shard = ANY (w.shards) AND w.last_seen > now() - interval '2 minutes'
    RETURNING 1)
  SELECT count(*) > 0 INTO any_woken FROM woken;
  IF any_woken THEN
    PERFORM pg_notify('cogo_bus', p_service || '/' || p_role || '/' || p_shard);
  END IF;
END $$;

CREATE FUNCTION cogo_wake_on_insert() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cogo_wake_route(r.service, r.role, r.shard)
  FROM (SELECT DISTINCT service, role, shard FROM new_rows WHERE status = 'queued') r;
  RETURN NULL;
END $$;

CREATE TRIGGER agent_messages_wake_insert AFTER INSERT ON agent_messages
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cogo_wake_on_insert();

CREATE FUNCTION cogo_wake_on_requeue() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cogo_wake_route(NEW.service, NEW.role, NEW.shard);
  RETURN NULL;
END $$;

-- Requeues that are due now (release, reclaim, manual retry) wake too; delayed retries are
-- found by the poll.
CREATE TRIGGER agent_messages_wake_requeue AFTER UPDATE OF status ON agent_messages
  FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status <> 'queued'
                     AND (NEW.retry_at IS NULL OR NEW.retry_at <= now()))
  EXECUTE FUNCTION cogo_wake_on_requeue();
