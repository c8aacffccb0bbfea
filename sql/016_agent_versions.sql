-- 016: agent versions, canary weights and decision quality.
--
-- agent_versions holds every version of every agent the brain routes to: its model, budget and
-- TTL defaults, its status and its share of the agent's traffic. The brain seeds it from the
-- routing rules at start (a version the table does not have yet; rows it has are never
-- changed), chooses a version per decision by weight (orchestrator/versions.h) and records the
-- choice in `decisions`. Every change is one row in agent_version_events (who, what, why).
--
-- Decision quality: a decision is correct when its execution reached `done` and no feedback
-- says otherwise; feedback (decision_feedback, newest wins) overrides either way
-- (docs/decision-quality.md). decision_outcomes judges each decision, decision_quality counts
-- them per day, agent, version and intent.

CREATE TABLE agent_versions (
  agent_id      text          NOT NULL CHECK (agent_id <> ''),
  version       text          NOT NULL CHECK (version <> ''),
  model         text          NOT NULL CHECK (model <> ''),
  max_cost_usd  numeric(16,8) NOT NULL CHECK (max_cost_usd > 0),
  max_tokens    bigint        NOT NULL CHECK (max_tokens > 0),
  ttl_ms        bigint        NOT NULL CHECK (ttl_ms > 0),
  status        text          NOT NULL
                CHECK (status IN ('proposed', 'canary', 'active', 'retired')),
  -- Percent of the agent's decisions, to 0.01 %. Only canary and active versions carry weight;
  -- the operations keep an agent's weights summing to 100 (the active version has the rest).
  weight        numeric(5,2)  NOT NULL DEFAULT 0 CHECK (weight BETWEEN 0 AND 100),
  since         timestamptz   NOT NULL DEFAULT now(),  -- when status or weight last changed
  created_at    timestamptz   NOT NULL DEFAULT now(),
  created_by    text          NOT NULL,  -- 'routing' (seeded at brain start) or the proposer
  note          text          NOT NULL DEFAULT '',
  PRIMARY KEY (agent_id, version),
  CHECK (status IN ('canary', 'active') OR weight = 0)
);
-- One active version per agent. A promotion retires the old one first, in the same transaction.
CREATE UNIQUE INDEX agent_versions_one_active ON agent_versions (agent_id) WHERE status = 'active';

CREATE TABLE agent_version_events (
  id             bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id       text          NOT NULL,
  version        text          NOT NULL,
  action         text          NOT NULL,  -- seeded | proposed | canary | promoted | retired |
                                          -- rolled_back | reactivated | weight
  status_before  text,                    -- NULL when the row was created
  status_after   text          NOT NULL,
  weight_before  numeric(5,2),
  weight_after   numeric(5,2)  NOT NULL,
  actor          text          NOT NULL,  -- the token's subject, cli:<user>, routing, workflow
  reason         text          NOT NULL DEFAULT '',
  message_id     bigint,                  -- the upgrade step's bus message, when a run acted
  at             timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX agent_version_events_agent ON agent_version_events (agent_id, id);

-- The version the brain chose and whether it was a canary at the time; run_id for decisions
-- that started a workflow run.
ALTER TABLE decisions ADD COLUMN canary boolean NOT NULL DEFAULT false;
ALTER TABLE decisions ADD COLUMN run_id bigint;
CREATE INDEX decisions_agent_time ON decisions (agent_id, version, decided_at);

CREATE OR REPLACE FUNCTION cogo_record_decision() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO decisions (message_id, tenant, intent, matched_by, rule_intent, target, agent_id,
                         model, version, max_cost_usd, max_tokens, ttl_ms, rationale, source,
                         canary, run_id)
  VALUES (NEW.message_id, NEW.tenant, NEW.detail->>'intent', NEW.detail->>'matched_by',
          NEW.detail->>'rule_intent', NEW.detail->>'target', NEW.detail->>'agent_id',
          NEW.detail->>'model', NEW.detail->>'version',
          (NEW.detail->'budget'->>'maxCostUsd')::numeric, (NEW.detail->'budget'->>'maxTokens')::bigint,
          (NEW.detail->>'ttl_ms')::bigint, coalesce(NEW.detail->>'rationale', ''),
          coalesce(NEW.detail->>'source', 'decide'),
          coalesce((NEW.detail->>'canary')::boolean, false), (NEW.detail->>'run_id')::bigint);
  RETURN NULL;
END $$;

-- A person's or a judge's label. Several may arrive; the newest is the one that counts.
CREATE TABLE decision_feedback (
  id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  decision_id      bigint      NOT NULL REFERENCES decisions ON DELETE CASCADE,
  correct          boolean     NOT NULL,
  expected_intent  text,
  actor            text        NOT NULL,
  at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decision_feedback_decision ON decision_feedback (decision_id, id);

-- One row per decision with its execution's outcome:
--   pending  a message of the execution is queued or running
--   failed   a message ended failed, dead or cancelled (a workflow run: failed, timed_out,
--            cancelled)
--   done     every message ended done (a workflow run: succeeded, i.e. through its gates)
--   unknown  the execution's messages are gone (pruned by retention)
-- The execution is the decision's message with its children and every message correlated to
-- it: decide -> execute -> target for decide decisions, execute -> target for API ones.
-- correct: the newest feedback when there is one, else outcome = done; NULL while pending or
-- unknown. latency_ms runs from the first message's creation to the last one's end;
-- queue_wait_ms adds up the time the execution's messages waited to be claimed.
CREATE VIEW decision_outcomes AS
SELECT d.id AS decision_id, d.message_id, d.tenant, d.intent, d.rule_intent, d.target,
       d.agent_id, d.version, d.model, d.canary, d.source, d.run_id, d.decided_at,
       o.outcome, f.correct AS feedback_correct, f.expected_intent,
       CASE WHEN f.correct IS NOT NULL THEN f.correct
            WHEN o.outcome = 'done' THEN true
            WHEN o.outcome = 'failed' THEN false END AS correct,
       o.latency_ms, o.queue_wait_ms, coalesce(u.cost_usd, 0) AS cost_usd
FROM decisions d
CROSS JOIN LATERAL (
  SELECT CASE
           WHEN d.run_id IS NOT NULL THEN
             (SELECT CASE WHEN r.status = 'succeeded' THEN 'done'
                          WHEN r.status IN ('running', 'waiting') THEN 'pending'
                          ELSE 'failed' END
              FROM workflow_runs r WHERE r.id = d.run_id)
           WHEN count(*) = 0 THEN 'unknown'
           WHEN bool_or(m.status IN ('queued', 'running')) THEN 'pending'
           WHEN bool_or(m.status IN ('failed', 'dead', 'cancelled')) THEN 'failed'
           ELSE 'done' END AS outcome,
         extract(epoch FROM max(m.finished_at) - min(m.created_at)) * 1000 AS latency_ms,
         extract(epoch FROM sum(m.started_at - m.created_at)) * 1000 AS queue_wait_ms,
         array_agg(m.id) AS ids
  FROM agent_messages m
  WHERE m.id = d.message_id OR m.parent_id = d.message_id
     OR m.correlation_id = d.message_id::text) o
LEFT JOIN LATERAL (
  SELECT sum(mu.cost_usd) AS cost_usd FROM message_usage mu WHERE mu.message_id = ANY (o.ids)) u ON true
LEFT JOIN LATERAL (
  SELECT fb.correct, fb.expected_intent FROM decision_feedback fb
  WHERE fb.decision_id = d.id ORDER BY fb.id DESC LIMIT 1) f ON true;

-- Decision quality per UTC day, agent, version and intent: correct / judged (NULL when
-- nothing is judged yet). The metrics server and `GET /api/decisions/quality` read it.
CREATE VIEW decision_quality AS
SELECT (decided_at AT TIME ZONE 'UTC')::date AS day, agent_id, version, intent,
       count(*) AS decisions,
       count(*) FILTER (WHERE canary) AS canary_decisions,
       count(correct) AS judged,
       count(*) FILTER (WHERE correct) AS correct,
       count(*) FILTER (WHERE outcome = 'pending') AS pending,
       count(feedback_correct) AS with_feedback,
       round(count(*) FILTER (WHERE correct)::numeric / nullif(count(correct), 0), 4) AS quality
FROM decision_outcomes
GROUP BY 1, 2, 3, 4;
