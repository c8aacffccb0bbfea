-- 003: executor and ops daemons. The TTL deadline of a queued message computed in SQL (so the
-- reclaimer judges it against the database clock), and indexes for the executor's tenant
-- reservation and for retention of usage rows.

-- When the assignment's TTL ends: the earliest of created_at and __assignment.issued_at, plus
-- __assignment.ttl_ms. NULL when the payload has no usable TTL (no envelope, ttl_ms not an
-- integer in 1..604800000): malformed values never raise, they just never expire here (the
-- worker fails such a message as assignment_invalid). A malformed issued_at is ignored.
CREATE FUNCTION cogo_assignment_deadline(payload jsonb, created_at timestamptz)
  RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN coalesce(jsonb_typeof(payload->'__assignment'->'ttl_ms'), '') <> 'number' THEN NULL
    WHEN (payload->'__assignment'->'ttl_ms')::numeric NOT BETWEEN 1 AND 604800000 THEN NULL
    WHEN (payload->'__assignment'->'ttl_ms')::numeric <> trunc((payload->'__assignment'->'ttl_ms')::numeric) THEN NULL
    ELSE least(created_at,
               CASE WHEN coalesce(jsonb_typeof(payload->'__assignment'->'issued_at'), '') = 'number'
                         AND (payload->'__assignment'->'issued_at')::numeric BETWEEN 0 AND 253402300799999
                    THEN to_timestamp((payload->'__assignment'->'issued_at')::float8 / 1000.0) END)
         + (payload->'__assignment'->'ttl_ms')::float8 * interval '1 millisecond'
  END $$;

-- The executor's reservation reads the unfinished children of a tenant.
CREATE INDEX agent_messages_open_children ON agent_messages (tenant)
  WHERE parent_id IS NOT NULL AND status IN ('queued', 'running');

-- Retention deletes usage rows by age across tenants.
CREATE INDEX message_usage_recorded ON message_usage (recorded_at);
