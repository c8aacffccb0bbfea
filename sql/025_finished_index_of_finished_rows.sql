-- cogo:no-transaction
-- 025: the finished_at BRIN index holds finished rows only.
--
-- agent_messages_finished (001) summarized every row, and in PostgreSQL 15 a BRIN range whose
-- rows all have a NULL finished_at is summarized as "all nulls" without the "has nulls" flag,
-- so every further NULL added to it rewrites the range's summary: one exclusive lock on the
-- index page and one WAL record per row. Every claim (a new row version, never HOT: status is
-- in the queued indexes' predicates) added a NULL finished_at, so in a queue vacuumed before it
-- was drained each claim in such a range rewrote its summary (3,983 of 20,000 claims in
-- `cogo-bench drain`, measured with pg_waldump; docs/benchmarks.md). Publishes, requeues and
-- releases did the same. Under `WHERE finished_at IS NOT NULL` none of them touches the index;
-- completions and failures that set finished_at add their value as before. Every reader of the
-- index (the metrics windows, retention's prune and count) bounds finished_at with a strict
-- comparison, which implies the predicate, so their plans keep it.
--
-- Non-transactional (src/db/migrator.cpp): the new index is built CONCURRENTLY beside the old
-- one, which goes next, and takes its name last. Each statement may run again: a run stopped
-- after the rename builds the new index once more, drops the renamed one and renames again.

CREATE INDEX CONCURRENTLY IF NOT EXISTS agent_messages_finished_set
  ON agent_messages USING brin (finished_at) WHERE finished_at IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS agent_messages_finished;

ALTER INDEX IF EXISTS agent_messages_finished_set RENAME TO agent_messages_finished;
