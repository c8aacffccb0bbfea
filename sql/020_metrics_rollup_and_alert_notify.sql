-- 020: the metrics server's hourly latency rollup, and alert transitions sent as workflow runs.
--
-- Latency. /api/metrics/bus/latency over 24h read every message that finished in the window
-- and sorted it for each percentile: 3.4 s for 285,320 messages on a bus of 2 million
-- (docs/metrics.md). The metrics server now rolls each finished UTC hour up once into
-- bus_latency_hours (one row per hour, route and tenant: counts, sums and log-scale histograms
-- of queue wait and handler time), and a window reads the hours it covers from there and only
-- its two partial edges from agent_messages. Nothing on the bus's write path changes: the
-- rollup is the metrics server's own periodic read of rows that no longer change.
--
-- cogo_latency_bucket is the histogram's one definition, shared by the rollup and the reads of
-- the edges (src/metrics/latency_histogram.cpp mirrors it to turn buckets back into seconds):
-- bucket 0 holds values under 100 µs (and negative clock skew), bucket k >= 1 holds
-- [1e-4 * 2^((k-1)/8), 1e-4 * 2^(k/8)) seconds, 8 buckets per doubling (each 9% wide), and 300
-- holds everything from about 200 days. The constant is 8 / ln 2.
CREATE FUNCTION cogo_latency_bucket(seconds double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN seconds IS NULL OR seconds < 0.0001 THEN 0
              ELSE least(1 + floor(ln(seconds * 10000.0) * 11.541560327111707)::integer, 300) END
$$;

CREATE TABLE bus_latency_hours (
  hour            timestamptz      NOT NULL,  -- start of the UTC hour the messages finished in
  service         text             NOT NULL,
  role            text             NOT NULL,
  tenant          text             NOT NULL,
  messages        bigint           NOT NULL,
  wait_sum        double precision NOT NULL,  -- seconds, for the mean
  handler_sum     double precision NOT NULL,
  wait_buckets    integer[]        NOT NULL,  -- the non-empty buckets, ascending
  wait_counts     bigint[]         NOT NULL,  -- their counts, same order
  handler_buckets integer[]        NOT NULL,
  handler_counts  bigint[]         NOT NULL,
  PRIMARY KEY (hour, service, role, tenant)
);

-- Every hour before rolled_through is in bus_latency_hours (an hour without messages has no
-- rows). One row; absent until the first hour is rolled up.
CREATE TABLE bus_latency_rollup_state (
  singleton      boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  rolled_through timestamptz NOT NULL
);

-- Alerts. A rule may name a workflow (its `notify`): each of its transitions starts one run of
-- that workflow through the brain's API, whose Notify node posts the webhook. The transition row
-- is the outbox: the evaluator records the workflow with the transition, the notifier fills in
-- the run it started (the brain's Idempotency-Key `alert-transition:<id>` makes a repeated
-- request return that same run) or why it could not.
ALTER TABLE alert_transitions
  ADD COLUMN notify_workflow text,         -- NULL: the rule sends nothing
  ADD COLUMN notify_run_id   bigint,       -- the run started for it
  ADD COLUMN notify_attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN notify_error    text,         -- the last refusal or failure, machine-readable
  ADD COLUMN notified_at     timestamptz;  -- when the run was started, or when sending gave up

CREATE INDEX alert_transitions_unsent ON alert_transitions (id)
  WHERE notify_workflow IS NOT NULL AND notified_at IS NULL;

-- cogo-metrics-server connects as a cogo_reader user (015): it maintains the rollup and its
-- outbox columns, nothing else.
GRANT INSERT, DELETE ON bus_latency_hours TO cogo_reader;
GRANT INSERT, UPDATE ON bus_latency_rollup_state TO cogo_reader;
GRANT UPDATE (notify_run_id, notify_attempts, notify_error, notified_at) ON alert_transitions TO cogo_reader;

-- Row-level security as 017 gives every tenant table: a tenant token's reads (as cogo_tenant)
-- see their tenant's hours only; the daemons' roles see and write all.
ALTER TABLE bus_latency_hours ENABLE ROW LEVEL SECURITY;
CREATE POLICY daemons ON bus_latency_hours TO cogo_worker, cogo_ops, cogo_reader USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON bus_latency_hours FOR SELECT TO cogo_tenant
  USING (tenant = current_setting('cogo.tenant', true));
