-- 007: vacuum agent_messages after a fixed number of dead rows, not a fraction of the table.
--
-- A claim scans agent_messages_queued from its start. A claimed row's entry stays in that index
-- (marked dead, still read) until VACUUM removes it, so every claim walks every entry claimed
-- since the last vacuum: 1,200 index pages and ~6 ms for 200,000 of them, against 0.1 ms right
-- after a vacuum (docs/operations.md). The reclaimer's walk of agent_messages_lease grows the
-- same way. Autovacuum's default trigger is 20% of the table dead; with a week of finished
-- messages kept by retention that is millions of messages between vacuums, and claims slow down
-- to hundreds of milliseconds. Each message leaves two dead row versions (claim, completion), so
-- 10,000 dead rows is about 5,000 messages, checked every autovacuum_naptime.
--
-- vacuum_index_cleanup = on: a vacuum that finds few dead rows in a large table would otherwise
-- skip the indexes, and the indexes are where claims pay. These reloptions take a
-- SHARE UPDATE EXCLUSIVE lock: reads and writes go on while they are set.
ALTER TABLE agent_messages SET (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 10000,
  vacuum_index_cleanup = on);
