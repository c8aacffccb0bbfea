-- Producer: one message per transaction, as cogo publishes a message without a key.
INSERT INTO agent_messages (service, role, tenant, payload) VALUES ('bench', 'vacuum', 't', '{"n": 1}');
