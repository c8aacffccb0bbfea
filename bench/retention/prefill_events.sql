-- :events audit rows spread evenly over the last 40 days (four events per message, as a claim,
-- a completion and two domain events would write), then VACUUM ANALYZE: the table as retention
-- finds it in a steady state, a quarter of it older than the 30 days it keeps.
INSERT INTO bus_events (message_id, event, service, role, tenant, at, detail)
SELECT g / 4, (ARRAY['claimed', 'execute_enqueued', 'completed', 'execute_done'])[g % 4 + 1],
       'gateway', 'chat', 'tenant-' || (g % 50),
       now() - interval '40 days' + (g::float8 / :events) * interval '40 days',
       jsonb_build_object('owner', 'worker-' || (g % 8), 'attempt', 1, 'fence', 1)
FROM generate_series(1, :events) AS g;
VACUUM ANALYZE bus_events;
