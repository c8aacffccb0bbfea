-- Producer: enqueue one message (one transaction).
INSERT INTO ref_queue (payload) VALUES ('{"n": 1}');
