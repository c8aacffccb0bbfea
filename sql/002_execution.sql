-- 002: execution. A message can be the child of another (the executor's hand-off, a workflow
-- step); the child's lifecycle is written onto the parent's trail by triggers, in the child's
-- own transaction, so one query over the parent shows the whole request. Usage (tokens, cost)
-- is recorded per message attempt for cost aggregation by assignment, agent, tenant and day.

ALTER TABLE agent_messages ADD COLUMN parent_id bigint;
CREATE INDEX agent_messages_parent ON agent_messages (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE message_usage (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id    bigint        NOT NULL,
  attempt       integer       NOT NULL,
  tenant        text          NOT NULL,
  service       text          NOT NULL,
  role          text          NOT NULL,
  agent_id      text,
  version       text,
  model         text,
  input_tokens  bigint        NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
  output_tokens bigint        NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
  cost_usd      numeric(16,8) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
  outcome       text          NOT NULL,
  recorded_at   timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX message_usage_tenant_time ON message_usage (tenant, recorded_at);
CREATE INDEX message_usage_message ON message_usage (message_id);

-- Children of an `execute` message report as execute_*; other parents get child_*.
CREATE FUNCTION cogo_child_event(parent_role text, what text) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN parent_role = 'execute' THEN 'execute_' ELSE 'child_' END || what $$;

CREATE FUNCTION cogo_child_enqueued() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT p.id, cogo_child_event(p.role, 'enqueued'), p.service, p.role, p.tenant,
         jsonb_build_object('child_id', NEW.id, 'service', NEW.service, 'role', NEW.role,
                            'shard', NEW.shard)
  FROM agent_messages p WHERE p.id = NEW.parent_id;
  RETURN NULL;
END $$;

CREATE TRIGGER agent_messages_child_enqueued AFTER INSERT ON agent_messages
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION cogo_child_enqueued();

CREATE FUNCTION cogo_child_finished() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bus_events (message_id, event, service, role, tenant, detail)
  SELECT p.id, cogo_child_event(p.role, CASE WHEN NEW.status = 'done' THEN 'done' ELSE 'failed' END),
         p.service, p.role, p.tenant,
         jsonb_strip_nulls(jsonb_build_object('child_id', NEW.id, 'status', NEW.status,
                                              'error', NEW.last_error))
  FROM agent_messages p WHERE p.id = NEW.parent_id;
  RETURN NULL;
END $$;

CREATE TRIGGER agent_messages_child_finished AFTER UPDATE OF status ON agent_messages
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL
                     AND NEW.status IN ('done', 'failed', 'dead', 'cancelled')
                     AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION cogo_child_finished();
