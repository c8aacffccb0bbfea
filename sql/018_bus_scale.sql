-- cogo:no-transaction
-- 018: bus races and scale (issue 10): the TTL deadline stored at publish time, an ordered index
-- for retention of bus_events, and route names without '/'.
--
-- Non-transactional (the marker above; src/db/migrator.cpp): each statement commits on its own,
-- so the two indexes on the bus's biggest tables are built CONCURRENTLY, with reads and writes
-- going on meanwhile. The file is recorded only after its last statement, and every statement
-- may run again: a failed run starts over from the top, and an INVALID index a failed build left
-- behind is dropped by the migrator before it is built again. A concurrent build waits for every
-- transaction open when it starts: a session left idle in a transaction holds the migration up.

-- 1. The reclaimer's TTL sweep evaluated cogo_assignment_deadline (sql/003) on every queued row
-- with an envelope, every pass: 1,000,000 queued messages cost a scan of all of them to find
-- none expired (docs/benchmarks.md, "Retention and the TTL sweep"). The publish statements now
-- store the deadline the same function computes (created_at is the publish transaction's now()),
-- so the function stays the one TTL rule, and the sweep walks a partial index of queued rows
-- that have one. Nullable, no default: adding it rewrites nothing.
ALTER TABLE agent_messages ADD COLUMN IF NOT EXISTS ttl_deadline timestamptz;

-- Messages queued before this migration (queued rows only: the partial queued index finds them).
-- One published by a binary older than this migration has none and is not ended while queued;
-- the worker that claims it still fails it with ttl_exceeded.
UPDATE agent_messages SET ttl_deadline = cogo_assignment_deadline(payload, created_at)
WHERE status = 'queued' AND ttl_deadline IS NULL AND payload ? '__assignment';

-- Only queued rows with a deadline: claimed, finished and envelope-less rows are never in it, so
-- a claim or completion (already not HOT: status is in agent_messages_queued's predicate) adds
-- no entry.
CREATE INDEX CONCURRENTLY IF NOT EXISTS agent_messages_ttl_deadline ON agent_messages (ttl_deadline)
  WHERE status = 'queued' AND ttl_deadline IS NOT NULL;

-- 2. Retention deleted bus_events `WHERE id IN (... ORDER BY at LIMIT n)` with no index on id and
-- only a BRIN on at: every batch read every prunable row to sort them and then scanned the whole
-- table for the ids. With an ordered index on at, a batch reads its own rows' index entries and
-- deletes them by ctid (src/ops/statements.h, kPruneEvents). The BRIN stays: the metrics
-- server's time-window scans use it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS bus_events_at_order ON bus_events (at);

-- 3. A wake-up names its route "service/role/shard" (001, 005), so a name with a '/' could not be
-- read back and its workers would never be woken. The bus, the worker and the config readers
-- refuse such names; this refuses a row written by SQL. NOT VALID: existing rows are not scanned
-- (a brief lock, no table scan); every row inserted or updated from now on is checked.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conname = 'agent_messages_route_names'
                   AND conrelid = 'agent_messages'::regclass) THEN
    ALTER TABLE agent_messages ADD CONSTRAINT agent_messages_route_names
      CHECK (strpos(service, '/') = 0 AND strpos(role, '/') = 0) NOT VALID;
  END IF;
END $$;
