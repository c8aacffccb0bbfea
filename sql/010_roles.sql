-- 010: least-privilege group roles. The role that runs the migrations owns the schema; the
-- daemons log in as users that are members of one of these (NOLOGIN) roles and can change
-- data but never the schema:
--   cogo_edge    the HTTP edge: publishes requests (INSERT agent_messages and their trail) and
--                reads them back; cannot claim, change or delete work.
--   cogo_worker  every bus worker (executor, gateway-chat, the brain and its workflow engine,
--                the flow workers): claims, completes and publishes messages, writes trails,
--                usage, decisions and workflow state; deletes nothing but its own worker row.
--   cogo_ops     the reclaimer, retention and operators' `cogo` CLI: cogo_worker's rights and
--                deleting (retention) old rows.
--   cogo_reader  dashboards, the metrics server, read-only people: SELECT only.
-- None of them can create, alter or drop objects, TRUNCATE, or read another database.
-- Tables later migrations create get the same grants through the default privileges below
-- (as long as the same role runs the migrations); a migration that must differ says so.
-- deploy/sql/users.sql creates one login user per daemon in the right role.

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['cogo_edge', 'cogo_worker', 'cogo_ops', 'cogo_reader'] LOOP
    -- Roles belong to the cluster, not this database: another database may have made them.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;

GRANT USAGE ON SCHEMA public TO cogo_edge, cogo_worker, cogo_ops, cogo_reader;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO cogo_edge, cogo_worker, cogo_ops, cogo_reader;
GRANT INSERT ON agent_messages, bus_events TO cogo_edge;
GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO cogo_worker, cogo_ops;
GRANT DELETE ON bus_workers TO cogo_worker;
GRANT DELETE ON ALL TABLES IN SCHEMA public TO cogo_ops;
-- Batched publishes reserve ids with nextval() themselves.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO cogo_edge, cogo_worker, cogo_ops;
-- The migrations' bookkeeping is the owner's alone.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM cogo_worker, cogo_ops;

ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT ON TABLES TO cogo_edge, cogo_worker, cogo_ops, cogo_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT INSERT, UPDATE ON TABLES TO cogo_worker, cogo_ops;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT DELETE ON TABLES TO cogo_ops;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO cogo_edge, cogo_worker, cogo_ops;
