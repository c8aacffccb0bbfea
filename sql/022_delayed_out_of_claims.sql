-- cogo:no-transaction
-- 022: delayed messages out of the claim's scan.
--
-- agent_messages_queued (001) indexed every queued row in claim order, and the claim filtered
-- `retry_at IS NULL OR retry_at <= now()` after the index: each claim visited the heap row of
-- every message waiting for a time (retry backoffs, workflow timers, scheduled publishes) ahead
-- of the due ones, and an idle worker's empty claim visited all of them. The queued rows are now
-- split between two indexes by whether they carry a retry_at:
--   agent_messages_queued_ready    no retry_at: due since they were queued, in claim order;
--   agent_messages_queued_delayed  a retry_at, in the order they fall due.
-- The claim (src/bus/statements.h, kClaim) reads the first from its start and the second only up
-- to now() (an index condition: a row not yet due is never visited), and takes the best of both
-- by priority, then id. Nothing promotes a delayed row: it is claimable the moment it falls due,
-- found by the claim or by an idle worker's poll, as before. The claim clears retry_at, so a
-- message released or reclaimed later is queued ready.
--
-- Non-transactional (src/db/migrator.cpp): the new indexes are built CONCURRENTLY while the bus
-- runs, before the old one goes; claims of either version are correct on any of the three.

CREATE INDEX CONCURRENTLY IF NOT EXISTS agent_messages_queued_ready
  ON agent_messages (service, role, shard, priority DESC, id)
  WHERE status = 'queued' AND retry_at IS NULL;

CREATE INDEX CONCURRENTLY IF NOT EXISTS agent_messages_queued_delayed
  ON agent_messages (service, role, shard, retry_at)
  WHERE status = 'queued' AND retry_at IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS agent_messages_queued;
