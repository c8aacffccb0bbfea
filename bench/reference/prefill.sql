-- Pre-fill queued rows for the claim scripts; psql variable :rows sets how many.
INSERT INTO ref_queue (payload)
SELECT jsonb_build_object('n', g) FROM generate_series(1, :rows) AS g;
VACUUM ANALYZE ref_queue;
CHECKPOINT;
