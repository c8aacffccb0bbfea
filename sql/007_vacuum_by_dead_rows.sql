-- 007: vacuum agent_messages after a fixed number of dead rows, not a fraction of the table.
--
-- A claim scans agent_messages_queued from its start. A claimed row's entry stays in that index
-- (marked dead, still read) until VACUUM removes it, so every claim walks every entry claimed
-- since the last vacuum: 1,210 index pages and 6-12 ms for 200,000 of them, against 0.12 ms
-- right after a vacuum (docs/operations.md). The reclaimer's walk of agent_messages_lease by
-- expiry reads past dead entries the same way. Autovacuum's default trigger is 50 + 20% of the
-- table dead; with a week of finished messages kept by retention (60 million at 100 msg/s) that
-- is millions of claimed entries between vacuums, and at the rate measured a claim would read
-- past them for hundreds of milliseconds. Each message leaves two dead row versions (claim,
-- completion), so 10,000 dead rows is about 5,000 messages, checked every autovacuum_naptime.
--
-- vacuum_index_cleanup = on: VACUUM skips the indexes when fewer than 2% of the table's pages
-- hold dead rows, which is always so when they are the last few thousand messages of a large
-- table, and the indexes are where claims pay. These reloptions take a SHARE UPDATE EXCLUSIVE
-- lock: reads and writes go on while they are set (a running autovacuum of the table is
-- cancelled; a manual or anti-wraparound one is waited for).
ALTER TABLE agent_messages SET (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 10000,
  vacuum_index_cleanup = on);
