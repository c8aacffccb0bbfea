-- A bus that has run for a while: :finished finished messages (retention keeps a week of them)
-- and :queued waiting, all vacuumed.
TRUNCATE agent_messages, bus_events RESTART IDENTITY;
INSERT INTO agent_messages (service, role, tenant, payload, status, finished_at)
SELECT 'bench', 'vacuum', 't', jsonb_build_object('n', g), 'done', now()
FROM generate_series(1, :finished) AS g;
INSERT INTO agent_messages (service, role, tenant, payload)
SELECT 'bench', 'vacuum', 't', '{}' FROM generate_series(1, :queued);
VACUUM ANALYZE agent_messages;
CHECKPOINT;
