-- pgbench producer for the end-to-end run: one graphile-worker job per transaction, through
-- graphile-worker's own SQL API. The payload's "i" numbers every job so the driver can check
-- that each ran exactly once.
SELECT graphile_worker.add_job('noop', json_build_object('i', nextval('cogo_bench_seq')));
