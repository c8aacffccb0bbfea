-- 019: one audit row per attempt, written when the attempt ends; the trail reads it back whole.
--
-- Until now every claim inserted a `claimed` row into bus_events and every completion a
-- `completed` row: two heap inserts and two index inserts (bus_events_message, and the BRIN's
-- summarizing) per message, the claim's half on the hottest statement the bus has. The claim
-- no longer writes one. The event that ends an attempt (completed, retry_scheduled, failed,
-- dead_lettered, released, reclaimed, or cancelled while running) carries the claim in its
-- detail: claimed_at (the claim's database time), owner, attempt and fence. An attempt still
-- running is the message row itself: status 'running', lease_owner, attempts, fence and
-- started_at (= claimed_at). Nothing is lost: if the claim's transaction commits and the
-- worker dies, the reclaimer's `reclaimed` (or `dead_lettered`) row carries it.
--
-- bus_trail is the trail as before: every bus_events row, plus one `claimed` row per ended
-- attempt (at its claimed_at, synthesized from the ending event) and one for the running attempt
-- (from the message row). Read it in the order `ORDER BY at, ord, id`: the claim (ord 0) sorts
-- before anything written at the same instant, events of one transaction in insertion order.
-- Filtering it by message_id reaches every branch (bus_events_message, the primary key).
-- security_invoker: whoever reads it reads the tables under their own rights and row-level
-- security (sql/017: a tenant token's read, as cogo_tenant, sees its tenant's rows only).
CREATE VIEW bus_trail WITH (security_invoker = true) AS
SELECT e.message_id, e.id, 1 AS ord, e.event, e.service, e.role, e.tenant, e.at, e.detail
FROM bus_events e
UNION ALL
SELECT e.message_id, e.id, 0, 'claimed', e.service, e.role, e.tenant,
       (e.detail->>'claimed_at')::timestamptz,
       jsonb_build_object('owner', e.detail->'owner', 'attempt', e.detail->'attempt',
                          'fence', e.detail->'fence')
FROM bus_events e
WHERE e.detail ? 'claimed_at'
UNION ALL
SELECT m.id, NULL, 0, 'claimed', m.service, m.role, m.tenant, m.started_at,
       jsonb_build_object('owner', m.lease_owner, 'attempt', m.attempts, 'fence', m.fence)
FROM agent_messages m
WHERE m.status = 'running';

GRANT SELECT ON bus_trail TO cogo_edge, cogo_worker, cogo_ops, cogo_reader, cogo_tenant;
