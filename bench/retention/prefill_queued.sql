-- :queued messages waiting with an assignment whose TTL (1 hour) has not passed: the reclaimer's
-- TTL sweep finds nothing to end, which is what most passes find. ttl_deadline as the publish
-- statements store it (sql/018).
INSERT INTO agent_messages (service, role, tenant, payload, ttl_deadline)
SELECT 'gateway', 'chat', 'tenant-' || (g % 50), p, cogo_assignment_deadline(p, now())
FROM generate_series(1, :queued) AS g,
     LATERAL (SELECT jsonb_build_object('__assignment', jsonb_build_object(
                'agent_id', 'a', 'version', '1', 'model', 'm', 'ttl_ms', 3600000,
                'budget', jsonb_build_object('maxCostUsd', 0.01, 'maxTokens', 100)),
              'input', g) AS p) AS x;
VACUUM ANALYZE agent_messages;
