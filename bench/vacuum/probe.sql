-- What one claim's index scan reads now (rolled back: nothing is claimed).
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT id FROM agent_messages
WHERE status = 'queued' AND retry_at IS NULL AND service = 'bench' AND role = 'vacuum' AND shard = 0
ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED;
ROLLBACK;
