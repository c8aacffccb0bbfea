-- 021: the tenant's daily spend as a running total, so the executor's admission no longer sums a
-- day of usage under a tenant-wide lock.
--
-- Until 021 each admission took a per-tenant advisory lock and summed the tenant's usage since
-- 00:00 UTC and the maxCostUsd of every unfinished hand-off, holding the lock from that read to
-- the commit: one tenant's admissions ran one at a time for the length of the whole transaction
-- (66 admissions/s against 620/s without the lock, docs/operations-executor.md). Now:
--
--   tenant_spend          one row per tenant: spent_usd (usage recorded on `day`, UTC) and
--                         reserved_usd (maxCostUsd of hand-offs not finished yet).
--   tenant_spend_changes  what happened since the tenant's last admission: usage recorded (by a
--                         statement trigger on message_usage) and hand-offs ending or being
--                         retried (a row trigger on agent_messages). Writers only insert here,
--                         so a worker's flush never waits for an admission, nor two flushes for
--                         each other on a tenant's row.
--
-- The admission (src/executor/statements.h, kReserveHandOff) folds the changes into the row and
-- adds its hand-off's reservation in one UPDATE, its transaction's last statement: the row lock
-- orders one tenant's admissions for only that statement and the commit, and each one judges
-- the total the previous one committed, so the daily cap still holds at commit time.

CREATE TABLE tenant_spend (
  tenant       text        PRIMARY KEY,
  day          date        NOT NULL,  -- the UTC day spent_usd belongs to
  spent_usd    numeric     NOT NULL DEFAULT 0 CHECK (spent_usd >= 0),
  reserved_usd numeric     NOT NULL DEFAULT 0 CHECK (reserved_usd >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);  -- one row per tenant, updated by every admission: room for HOT updates

CREATE TABLE tenant_spend_changes (
  tenant       text    NOT NULL,
  day          date    NOT NULL,  -- the UTC day of the usage (of the change, for reservations)
  spent_usd    numeric NOT NULL DEFAULT 0,
  reserved_usd numeric NOT NULL DEFAULT 0  -- negative: a hand-off ended
);
CREATE INDEX tenant_spend_changes_tenant ON tenant_spend_changes (tenant);

CREATE FUNCTION cogo_utc_day(at timestamptz) RETURNS date
  LANGUAGE sql IMMUTABLE AS $$ SELECT (at AT TIME ZONE 'UTC')::date $$;

-- What a hand-off reserves: its assignment's maxCostUsd (the executor never hands off one that
-- is not a positive number; anything else reserves nothing).
CREATE FUNCTION cogo_reserved_usd(payload jsonb) RETURNS numeric
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN jsonb_typeof(payload->'__assignment'->'budget'->'maxCostUsd') = 'number'
              THEN greatest((payload->'__assignment'->'budget'->'maxCostUsd')::numeric, 0)
              ELSE 0 END $$;

-- A hand-off is the executor's child of an execute message; its idempotency key says so
-- (src/executor/dispatcher.cpp), which spares a look-up of the parent.
CREATE FUNCTION cogo_is_hand_off(parent_id bigint, idempotency_key text) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$ SELECT idempotency_key = 'execute:' || parent_id $$;

CREATE FUNCTION cogo_tenant_spend_usage() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tenant_spend_changes (tenant, day, spent_usd)
  SELECT tenant, cogo_utc_day(recorded_at), sum(cost_usd)
  FROM new_usage WHERE cost_usd > 0
  GROUP BY 1, 2;
  RETURN NULL;
END $$;

CREATE TRIGGER message_usage_tenant_spend AFTER INSERT ON message_usage
  REFERENCING NEW TABLE AS new_usage FOR EACH STATEMENT EXECUTE FUNCTION cogo_tenant_spend_usage();

-- A hand-off that ends (done, failed, dead, cancelled) gives its reservation back; one that an
-- operator retries (back to queued) takes it again, without a cap check, as before 021.
CREATE FUNCTION cogo_tenant_spend_hand_off() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tenant_spend_changes (tenant, day, reserved_usd)
  SELECT NEW.tenant, cogo_utc_day(now()),
         CASE WHEN NEW.status IN ('queued', 'running') THEN r.usd ELSE -r.usd END
  FROM (SELECT cogo_reserved_usd(NEW.payload) AS usd) r
  WHERE r.usd > 0;
  RETURN NULL;
END $$;

CREATE TRIGGER agent_messages_tenant_spend AFTER UPDATE OF status ON agent_messages
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL
                     AND (OLD.status IN ('queued', 'running')) <> (NEW.status IN ('queued', 'running'))
                     AND cogo_is_hand_off(NEW.parent_id, NEW.idempotency_key))
  EXECUTE FUNCTION cogo_tenant_spend_hand_off();

-- Recounts every tenant's row from the truth (today's usage in message_usage, the unfinished
-- hand-offs in agent_messages) and drops the pending changes: the migration's starting point,
-- and an operator's repair after executors older than 021 admitted alongside newer ones
-- (`SELECT cogo_tenant_spend_recount()` as the owner). Admissions wait meanwhile.
CREATE FUNCTION cogo_tenant_spend_recount() RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE tenant_spend IN SHARE ROW EXCLUSIVE MODE;
  UPDATE tenant_spend SET day = cogo_utc_day(now()), spent_usd = 0, reserved_usd = 0, updated_at = now();
  -- One statement, one snapshot: a change is either dropped and counted in the truth, or kept
  -- and counted by a later fold, never both.
  WITH dropped AS (DELETE FROM tenant_spend_changes),
  truth AS (
    SELECT tenant, sum(cost_usd) AS spent_usd, 0 AS reserved_usd FROM message_usage
    WHERE recorded_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    GROUP BY tenant
    UNION ALL
    SELECT tenant, 0, sum(cogo_reserved_usd(payload)) FROM agent_messages
    WHERE parent_id IS NOT NULL AND status IN ('queued', 'running')
      AND cogo_is_hand_off(parent_id, idempotency_key)
    GROUP BY tenant)
  INSERT INTO tenant_spend (tenant, day, spent_usd, reserved_usd)
  SELECT tenant, cogo_utc_day(now()), sum(spent_usd), sum(reserved_usd) FROM truth GROUP BY tenant
  ON CONFLICT (tenant) DO UPDATE
    SET spent_usd = EXCLUDED.spent_usd, reserved_usd = EXCLUDED.reserved_usd;
END $$;

-- The triggers above exist first: creating them locks message_usage and agent_messages against
-- writes until this migration commits, so the recount misses nothing written meanwhile.
SELECT cogo_tenant_spend_recount();

-- Least privilege (010) and row-level security (017), as for the other tenant tables. The
-- executor (cogo_worker) folds the changes, so it may delete them.
GRANT DELETE ON tenant_spend_changes TO cogo_worker;
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tenant_spend', 'tenant_spend_changes'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY daemons ON %I TO cogo_worker, cogo_ops, cogo_reader '
                   'USING (true) WITH CHECK (true)', t);
    EXECUTE format('CREATE POLICY edge_reads ON %I FOR SELECT TO cogo_edge USING (true)', t);
    EXECUTE format('CREATE POLICY tenant_rows ON %I FOR SELECT TO cogo_tenant '
                   'USING (tenant = current_setting(''cogo.tenant'', true))', t);
  END LOOP;
END $$;
