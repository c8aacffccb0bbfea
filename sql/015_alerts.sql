-- 015: the metrics server. Alerts: the keys firing now (alert_states, one row per rule and key
-- while it fires) and every change (alert_transitions, append-only: firing, resolved), written
-- by cogo-metrics-server's evaluator (src/metrics/alert_evaluator.cpp) and read by /api/alerts.
-- And BRIN indexes so its time-window reads stay bounded on large tables (docs/metrics.md).

CREATE TABLE alert_states (
  rule       text             NOT NULL,
  key        text             NOT NULL,  -- what fires: a route "service/role", an agent
  severity   text             NOT NULL CHECK (severity IN ('warning', 'critical')),
  value      double precision NOT NULL,  -- the latest value that breached
  threshold  double precision NOT NULL,
  samples    bigint           NOT NULL,
  since      timestamptz      NOT NULL DEFAULT now(),
  updated_at timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (rule, key)
);

CREATE TABLE alert_transitions (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule      text             NOT NULL,
  key       text             NOT NULL,
  state     text             NOT NULL CHECK (state IN ('firing', 'resolved')),
  value     double precision NOT NULL,
  threshold double precision NOT NULL,
  severity  text             NOT NULL,
  at        timestamptz      NOT NULL DEFAULT now()
);

-- Window scans by time on append-mostly tables: rows arrive in time order, so a BRIN index
-- (a few pages, next to nothing per insert) narrows a 24h window to its block ranges.
-- decisions had (tenant, decided_at) and (intent, decided_at) only, which a scan across all
-- tenants cannot use; workflow_runs had no time index at all.
CREATE INDEX decisions_decided_brin ON decisions USING brin (decided_at);
CREATE INDEX workflow_runs_created_brin ON workflow_runs USING brin (created_at);

-- cogo-metrics-server connects as a cogo_reader user (010): it reads everything and writes only
-- its own alert bookkeeping, so the reader may change these two tables and nothing else.
GRANT INSERT, UPDATE, DELETE ON alert_states TO cogo_reader;
GRANT INSERT ON alert_transitions TO cogo_reader;
GRANT USAGE ON SEQUENCE alert_transitions_id_seq TO cogo_reader;
