-- Consumer: claim the oldest queued row with SKIP LOCKED and mark it done, in one transaction.
UPDATE ref_queue SET status = 'done'
WHERE id = (SELECT id FROM ref_queue WHERE status = 'queued'
            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED);
