-- 026: a flush's lock that fails when any lease is gone.
--
-- A worker's flush sends its whole transaction in one message (db::PipelinedTransaction):
-- BEGIN, the lock of the leases, the events, children, completions, failures, usage and COMMIT.
-- Everything after the lock is written only for attempts whose lease holds, so the lock must stop
-- the message when one does not: this raises, the rest of the message is skipped, the
-- transaction rolls back, and the worker writes the batch again without what belongs to the
-- lost leases (src/runtime/flusher.cpp). SQLSTATE CL001 names the case for the caller.
CREATE FUNCTION cogo_leases_held(locked bigint, wanted bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF locked < wanted THEN
    RAISE EXCEPTION 'lease_lost: % of % leases no longer held', wanted - locked, wanted
      USING ERRCODE = 'CL001';
  END IF;
  RETURN true;
END $$;
