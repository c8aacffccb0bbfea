-- 028: one NOTIFY channel per route, so a wake-up reaches only the processes that serve its route.
--
-- Until now every wake-up went out on the one channel 'cogo_bus' (the payload named the route),
-- and every process with workers listened on it: each process's LISTEN session sent it every
-- route's wake-ups and its LISTEN thread woke for each, though at most one process serves the
-- route (here the brain, the executor and the chat gateway: two of every three wake-ups were
-- for another process). Now each wake-up goes out on its route's channel, and a process's LISTEN
-- connection listens on the channels of its workers' routes (wake/wake_hub.h). PostgreSQL 15
-- still signals every listening session of the database for every NOTIFY; a session not
-- listening on the channel only reads the queue and sleeps again, sending nothing to its
-- process.
--
-- The channel is a hash of the route (hashtext, as for the wake locks' keys: md5 is refused on
-- servers in FIPS mode): channel names are identifiers of at most 63 bytes, and route names have
-- no length limit. Two routes whose hashes collide share a channel, which only wakes a process for
-- nothing (the payload still names the route, and the hub checks it). Processes ask the
-- database for a route's channel (one home for the name). The payload is unchanged:
-- 'service/role/shard'.
--
-- Upgrading: workers of the previous version listen on 'cogo_bus', which no longer carries
-- wake-ups; they find their work at their poll (COGO_POLL_MS) until they are replaced.
CREATE FUNCTION cogo_wake_channel(service text, role text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT 'cogo_bus_' || to_hex(hashtext(service || '/' || role)) $$;

CREATE OR REPLACE FUNCTION cogo_wake(service text, role text, shard integer) RETURNS boolean
  LANGUAGE sql VOLATILE
  AS $$
  SELECT CASE WHEN pg_try_advisory_xact_lock_shared(1668245297, cogo_wake_key(service, role, shard))
              THEN false
              ELSE pg_notify(cogo_wake_channel(service, role), service || '/' || role || '/' || shard) IS NOT NULL END $$;

CREATE OR REPLACE FUNCTION cogo_leave_idle(p_service text, p_role text, p_shards integer[])
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  s integer;
BEGIN
  PERFORM pg_advisory_unlock_all();
  FOR s IN SELECT DISTINCT x FROM unnest(p_shards) AS x LOOP
    PERFORM pg_notify(cogo_wake_channel(p_service, p_role), p_service || '/' || p_role || '/' || s);
  END LOOP;
END $$;
