-- 004: orchestrator decisions. Every decision the brain takes (a decide message's plan, or a
-- plan the REST API executed) is written as a `decided` event on the message's trail; this
-- trigger copies it into `decisions`, in the same transaction, for decision-quality metrics.
-- The detail is the plan as cogo-orchestrator-brain writes it (routing.h PlanJson + target,
-- source).

CREATE TABLE decisions (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id    bigint        NOT NULL,  -- the decide message (source decide) or the execute
                                         -- message (source api)
  tenant        text          NOT NULL,
  intent        text          NOT NULL,
  matched_by    text          NOT NULL,  -- rule | classifier | plan
  rule_intent   text          NOT NULL,
  target        text          NOT NULL,  -- service/role
  agent_id      text          NOT NULL,
  model         text          NOT NULL,
  version       text          NOT NULL,
  max_cost_usd  numeric(16,8) NOT NULL,
  max_tokens    bigint        NOT NULL,
  ttl_ms        bigint        NOT NULL,
  rationale     text          NOT NULL,
  source        text          NOT NULL,  -- decide | api
  decided_at    timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX decisions_message ON decisions (message_id);
CREATE INDEX decisions_tenant_time ON decisions (tenant, decided_at);
CREATE INDEX decisions_intent_time ON decisions (intent, decided_at);

CREATE FUNCTION cogo_record_decision() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO decisions (message_id, tenant, intent, matched_by, rule_intent, target, agent_id,
                         model, version, max_cost_usd, max_tokens, ttl_ms, rationale, source)
  VALUES (NEW.message_id, NEW.tenant, NEW.detail->>'intent', NEW.detail->>'matched_by',
          NEW.detail->>'rule_intent', NEW.detail->>'target', NEW.detail->>'agent_id',
          NEW.detail->>'model', NEW.detail->>'version',
          (NEW.detail->'budget'->>'maxCostUsd')::numeric, (NEW.detail->'budget'->>'maxTokens')::bigint,
          (NEW.detail->>'ttl_ms')::bigint, coalesce(NEW.detail->>'rationale', ''),
          coalesce(NEW.detail->>'source', 'decide'));
  RETURN NULL;
END $$;

-- The WHEN clause is judged before any function call: other events cost nothing extra.
CREATE TRIGGER bus_events_decided AFTER INSERT ON bus_events
  FOR EACH ROW WHEN (NEW.event = 'decided') EXECUTE FUNCTION cogo_record_decision();
