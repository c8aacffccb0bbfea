-- Consumer: the claim's index scan (agent_messages_queued_ready, oldest first, SKIP LOCKED) and the
-- completion, one message per transaction.
UPDATE agent_messages SET status = 'done', finished_at = now()
WHERE id = (SELECT id FROM agent_messages
            WHERE status = 'queued' AND retry_at IS NULL AND service = 'bench' AND role = 'vacuum'
              AND shard = 0
            ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED);
