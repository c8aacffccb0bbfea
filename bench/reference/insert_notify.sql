-- Producer with a wake-up: enqueue one message and pg_notify in the same transaction.
BEGIN;
INSERT INTO ref_queue (payload) VALUES ('{"n": 1}');
SELECT pg_notify('ref_queue', '1');
COMMIT;
