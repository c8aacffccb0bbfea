-- 006: the reclaimer's index names leases, not the running status.
--
-- 001's agent_messages_running_lease (lease_expires_at) WHERE status = 'running' matched every
-- statement that checks a lease (complete, fail, release, heartbeat, the flush's lease lock): all
-- say status = 'running'. Whenever the planner believed few rows were running (a fresh table, or
-- statistics from a quiet hour), those statements scanned that whole index and filtered it by
-- id, instead of looking their ids up by primary key: a batch of n completions cost n times the
-- number of running rows. A row holds a lease exactly while it runs (the claim sets
-- lease_expires_at, every way out of running clears it), so the same rows are indexed under a
-- predicate that only the reclaimer's `lease_expires_at < now()` implies.

-- Built before the old one goes: CREATE INDEX lets readers in meanwhile, DROP INDEX would not.
CREATE INDEX agent_messages_lease ON agent_messages (lease_expires_at)
  WHERE lease_expires_at IS NOT NULL;
DROP INDEX agent_messages_running_lease;
