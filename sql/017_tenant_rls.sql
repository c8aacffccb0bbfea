-- 017: row-level security by tenant, as defence in depth under the APIs' own tenant filters.
-- An HTTP service reading for a tenant token runs its read transaction as the NOLOGIN role
-- cogo_tenant with the verified token's tenant in the setting cogo.tenant (both SET LOCAL, so
-- they end with the transaction; http::JsonService::Read does it). As cogo_tenant a query sees
-- only that tenant's rows of the tables below, whatever its WHERE clause says, and nothing at
-- all when the setting is missing. The daemons' own roles (010) see every row, as before: their
-- policy is `true`, which the planner folds away, so the bus's hot path pays nothing; the edge
-- may only insert requests for the brain. The
-- migration owner and superusers bypass row security as table owners do.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cogo_tenant') THEN
    CREATE ROLE cogo_tenant NOLOGIN;
  END IF;
END $$;

-- Every daemon role may switch to cogo_tenant for a tenant's read (SET ROLE needs membership).
-- cogo_tenant is a member of none of them, so after the switch only its own policies apply.
GRANT cogo_tenant TO cogo_edge, cogo_worker, cogo_ops, cogo_reader;
GRANT USAGE ON SCHEMA public TO cogo_tenant;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cogo_tenant;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO cogo_tenant;
REVOKE SELECT ON schema_migrations, bus_workers FROM cogo_tenant;

-- Tables with a tenant column: the row's own tenant. Tables keyed by a parent: the parent's row
-- must be visible (the subquery runs under the parent's policy).
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['agent_messages', 'bus_events', 'message_usage', 'decisions', 'workflow_runs',
                           'rag_documents', 'rag_chunks', 'rag_chunk_deletions', 'kg_entities',
                           'kg_relations', 'kg_provenance'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY daemons ON %I TO cogo_worker, cogo_ops, cogo_reader '
                   'USING (true) WITH CHECK (true)', t);
    EXECUTE format('CREATE POLICY edge_reads ON %I FOR SELECT TO cogo_edge USING (true)', t);
    EXECUTE format('CREATE POLICY tenant_rows ON %I FOR SELECT TO cogo_tenant '
                   'USING (tenant = current_setting(''cogo.tenant'', true))', t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['workflow_steps', 'workflow_signals'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY daemons ON %I TO cogo_worker, cogo_ops, cogo_reader '
                   'USING (true) WITH CHECK (true)', t);
    EXECUTE format('CREATE POLICY edge_reads ON %I FOR SELECT TO cogo_edge USING (true)', t);
    EXECUTE format('CREATE POLICY tenant_rows ON %I FOR SELECT TO cogo_tenant '
                   'USING (EXISTS (SELECT FROM workflow_runs r WHERE r.id = run_id))', t);
  END LOOP;
END $$;

ALTER TABLE decision_feedback ENABLE ROW LEVEL SECURITY;
CREATE POLICY daemons ON decision_feedback TO cogo_worker, cogo_ops, cogo_reader
  USING (true) WITH CHECK (true);
CREATE POLICY edge_reads ON decision_feedback FOR SELECT TO cogo_edge USING (true);

-- The edge publishes requests for the brain and nothing else (its grants: INSERT on
-- agent_messages and bus_events only): a stolen edge login cannot put work on any other route.
CREATE POLICY edge_publishes ON agent_messages FOR INSERT TO cogo_edge
  WITH CHECK (service = 'orchestrator' AND role = 'decide' AND parent_id IS NULL);
CREATE POLICY edge_trail ON bus_events FOR INSERT TO cogo_edge WITH CHECK (true);
CREATE POLICY tenant_rows ON decision_feedback FOR SELECT TO cogo_tenant
  USING (EXISTS (SELECT FROM decisions d WHERE d.id = decision_id));

-- A view reads its tables with its owner's rights by default, which would bypass the policies.
ALTER VIEW decision_outcomes SET (security_invoker = true);
ALTER VIEW decision_quality SET (security_invoker = true);
