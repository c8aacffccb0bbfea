-- 005: wake-ups that cost a producer one lock probe instead of a trigger and a write.
--
-- 001 woke idle workers from a statement trigger that took a shared advisory lock and updated
-- bus_workers on every insert: a PL/pgSQL call, a transition table and a possible row-lock wait
-- per published message, which measured as more than half of a one-row publish's cost.
--
-- Now a worker's idleness is itself a lock. A worker whose claim comes back empty takes the
-- session-level wake lock of each of its shards (exclusive); while it holds them it is the
-- route's sentinel and waits for a NOTIFY. Every bus statement that makes a message due now
-- calls cogo_wake(), which tries the same lock in shared mode for the rest of its transaction: when
-- that fails, a sentinel is waiting and the statement sends one NOTIFY. Producers never conflict
-- with each other (shared locks), write nothing extra, and never wait.
--
-- No wake-up is lost. A producer either probes after the sentinel took its lock (the probe fails,
-- the NOTIFY goes out at commit), or it holds the shared lock from its probe until its commit, so
-- the worker's try for the exclusive lock fails until that commit; a worker that got the lock
-- claims once more before it waits, and sees every message committed before. Lock state is not
-- subject to MVCC snapshots, so the order of the insert and the probe inside a statement does
-- not matter. A worker whose try finds producers mid-commit holds nothing and looks again
-- soon; one that finds another worker's lock waits, since that sentinel's wake-ups reach it
-- too, and a sentinel that leaves wakes its shards (runtime/worker.cpp). Rows inserted or
-- requeued by other means than the bus statements are found by the workers' poll.

DROP TRIGGER agent_messages_wake_insert ON agent_messages;
DROP FUNCTION cogo_wake_on_insert();
DROP INDEX bus_workers_idle;  -- producers no longer read bus_workers; idle is for operators now

-- One lock per route shard, in its own advisory-lock class (001's route lock was 1668245295).
CREATE FUNCTION cogo_wake_key(service text, role text, shard integer) RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT hashtext(service || '/' || role || '/' || shard) $$;

-- True when it sent a NOTIFY (a sentinel waits on the shard). SQL, not PL/pgSQL: the planner
-- inlines it into the calling statement.
CREATE FUNCTION cogo_wake(service text, role text, shard integer) RETURNS boolean
  LANGUAGE sql VOLATILE
  AS $$
  SELECT CASE WHEN pg_try_advisory_xact_lock_shared(1668245297, cogo_wake_key(service, role, shard))
              THEN false
              ELSE pg_notify('cogo_bus', service || '/' || role || '/' || shard) IS NOT NULL END $$;

-- Called on a worker's claim connection when its claim came back empty. Per shard: takes the
-- wake lock, or finds it held exclusively by another worker (that sentinel's wake-ups reach
-- every worker of the shard), or finds only producers holding it (shared: their messages are
-- about to commit). Returns
--   'sentinel'  every shard's lock is now held here;
--   'covered'   the shards not held here have another sentinel (the caller keeps what it took);
--   'standby'   every shard has another sentinel, nothing is held here;
--   'busy'      producers are mid-commit on a shard: nothing is held, look again very soon.
-- The session's locks go back with cogo_leave_idle, or when the session ends.
CREATE FUNCTION cogo_try_idle(p_service text, p_role text, p_shards integer[]) RETURNS text
  LANGUAGE plpgsql AS $$
DECLARE
  k integer;
  taken integer[] := '{}';
  covered boolean := false;
BEGIN
  FOR k IN SELECT DISTINCT cogo_wake_key(p_service, p_role, x) FROM unnest(p_shards) AS x LOOP
    IF pg_try_advisory_lock(1668245297, k) THEN
      taken := taken || k;
    ELSIF pg_try_advisory_lock_shared(1668245297, k) THEN
      PERFORM pg_advisory_unlock_shared(1668245297, k);
      PERFORM pg_advisory_unlock(1668245297, t) FROM unnest(taken) AS t;
      RETURN 'busy';
    ELSE
      covered := true;
    END IF;
  END LOOP;
  RETURN CASE WHEN NOT covered THEN 'sentinel'
              WHEN cardinality(taken) > 0 THEN 'covered' ELSE 'standby' END;
END $$;

-- Gives the session's wake locks back (the claim connection holds no other advisory lock) and
-- wakes the shards, so that workers waiting on another sentinel take over at once.
CREATE FUNCTION cogo_leave_idle(p_service text, p_role text, p_shards integer[])
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  s integer;
BEGIN
  PERFORM pg_advisory_unlock_all();
  FOR s IN SELECT DISTINCT x FROM unnest(p_shards) AS x LOOP
    PERFORM pg_notify('cogo_bus', p_service || '/' || p_role || '/' || s);
  END LOOP;
END $$;

-- The bus's requeues that are due now (release, reclaim, retry, a failure retried at once)
-- call cogo_wake in their own statements, like publish: 001's row trigger goes, and with it a
-- trigger qualification every claim and completion statement prepared and evaluated.
DROP TRIGGER agent_messages_wake_requeue ON agent_messages;
DROP FUNCTION cogo_wake_on_requeue();
DROP FUNCTION cogo_wake_route(text, text, integer);
-- cogo_route_lock_key stays: workers of the previous version still take 001's idle barrier
-- (nobody holds that lock any more, so it returns at once) until they are replaced.
