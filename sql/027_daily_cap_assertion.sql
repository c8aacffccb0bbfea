-- 027: an admission that fails when it would pass the tenant's daily cap.
--
-- The executor sends an admission in one message when it expects every hand-off of the group
-- to fit its tenant's cap (src/executor/dispatcher.cpp): BEGIN, the lease lock, the hand-offs,
-- the completions, each tenant's reservation and COMMIT. The reservation then asserts the cap
-- with this function: over it, the statement raises, the rest of the message (COMMIT too) is
-- skipped and the transaction rolls back, and the executor admits the group again the way that
-- judges each hand-off in turn. The check is the executor's (spent today + reserved + maxCostUsd
-- <= cap) made once for the whole group, and a little stricter: costs are never negative, so
-- every hand-off fits when the group's total does; the total is the exact decimal sum, without
-- the executor's tolerance of 1e-9 USD, so a total within that of the cap takes the two-message
-- judgement instead. SQLSTATE CL002 names the case for the caller.
CREATE FUNCTION cogo_within_daily_cap(committed numeric, cap numeric) RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF committed > cap THEN
    RAISE EXCEPTION 'over_daily_cap: % USD committed today would pass the cap of % USD', committed, cap
      USING ERRCODE = 'CL002';
  END IF;
  RETURN true;
END $$;
