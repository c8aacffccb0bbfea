-- 023: a worker may claim and finish only the messages of its own routes, and every role's name
-- is configurable.
--
-- Route roles. Each worker daemon gets its own NOLOGIN role, a member of the worker group role
-- (010) so it keeps that role's grants. cogo_db_roles lists the routes ('service/role'; names
-- hold no '/', 018) each may work; a restrictive policy lets a member of the worker group update
-- (claim, complete, fail, release, heartbeat) only agent_messages rows of its routes, so a stolen
-- chat login cannot take or finish the executor's work. A claim of another route finds nothing
-- and a complete changes no row. Reading and publishing stay open: the executor hands work to any
-- route, a finished step publishes its run's advance. The brain may also cancel any route's live
-- message (a cancelled workflow's steps, an abandoned RAG query) and change nothing else on it. A
-- login that is only in the worker group has no route: it may publish but claims nothing. The
-- routes' names reach the policy through one array per statement (an InitPlan), so a claim pays
-- one array lookup per row it looks at.
--
-- Names. Every role is named <prefix>_<kind>; cogo_role(kind) returns it. The prefix is the
-- migrating session's setting cogo.role_prefix (`cogo migrate --role-prefix`, env
-- COGO_DB_ROLE_PREFIX; default cogo, the names 010 and 017 used). With another prefix, this
-- migration creates the roles under their new names and moves onto them every privilege, column
-- privilege, default privilege, policy and membership that the earlier migrations gave the cogo_*
-- roles in this database; those roles stay in the cluster (another database may use them) and
-- hold nothing here. Later migrations name roles through cogo_role(), in dynamic SQL.
--
-- Another worker route (a daemon of your own): as the owner, create its role in the worker group
-- and list its routes (docs/deploy.md, "Database roles").

CREATE TABLE cogo_db_roles (
  kind text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
  name name NOT NULL UNIQUE,
  routes text[] NOT NULL DEFAULT '{}' CHECK (array_position(routes, NULL) IS NULL),
  cancels_any boolean NOT NULL DEFAULT false,
  login boolean NOT NULL,  -- deploy/sql/users.sql makes <name>_login for it
  purpose text NOT NULL);

-- Only the owner decides who works which route (010's default privileges gave the daemons more).
REVOKE INSERT, UPDATE, DELETE ON cogo_db_roles FROM cogo_worker, cogo_ops;

-- Raises for an unknown kind: a caller switching to the role must never get NULL (set_config('role',
-- NULL) would reset to the login's own role).
CREATE FUNCTION cogo_role(p_kind text) RETURNS name
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  found_name name;
BEGIN
  SELECT name INTO found_name FROM cogo_db_roles WHERE kind = p_kind;
  IF found_name IS NULL THEN
    RAISE EXCEPTION 'no database role of kind % (cogo_db_roles)', quote_literal(p_kind);
  END IF;
  RETURN found_name;
END $$;

-- The routes the current user's roles may work, and whether one of them may cancel anywhere.
CREATE FUNCTION cogo_worker_routes() RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(DISTINCT route), '{}')
  FROM cogo_db_roles d JOIN pg_roles r ON r.rolname = d.name CROSS JOIN unnest(d.routes) AS route
  WHERE pg_has_role(current_user, r.oid, 'MEMBER') $$;

CREATE FUNCTION cogo_worker_cancels_any() RETURNS boolean
  LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT FROM cogo_db_roles d JOIN pg_roles r ON r.rolname = d.name
                 WHERE d.cancels_any AND pg_has_role(current_user, r.oid, 'MEMBER')) $$;

-- Whether the current user's claims of the route's messages can take any: a worker asks at
-- start, so a daemon under the wrong login says so instead of polling for nothing. Superusers,
-- the table's owner and roles outside the worker group answer by their grants alone.
CREATE FUNCTION cogo_may_work(p_service text, p_role text) RETURNS boolean
  LANGUAGE sql STABLE AS $$
  SELECT has_table_privilege('agent_messages', 'UPDATE')
     AND (r.rolsuper OR r.rolbypassrls
          OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'agent_messages'::regclass), 'USAGE')
          OR NOT pg_has_role(current_user, cogo_role('worker'), 'MEMBER')
          OR (p_service || '/' || p_role) = ANY (cogo_worker_routes()))
  FROM pg_roles r WHERE r.rolname = current_user $$;

DO $$
DECLARE
  prefix text := coalesce(nullif(current_setting('cogo.role_prefix', true), ''), 'cogo');
  k record;
  r record;
  old_oid oid;
  new_name text;
BEGIN
  IF prefix !~ '^[a-z][a-z0-9_]{0,39}$' THEN
    RAISE EXCEPTION 'cogo.role_prefix %: use lowercase letters, digits and _ (at most 40, starting with a letter)',
      quote_literal(prefix);
  END IF;

  INSERT INTO cogo_db_roles (kind, name, routes, cancels_any, login, purpose)
  SELECT kind, prefix || '_' || kind, routes, cancels_any, login, purpose
  FROM (VALUES
    ('edge', '{}'::text[], false, true, 'cogo-edge: publishes requests to orchestrator/decide, reads them back'),
    ('worker', '{}', false, false, 'group of the route roles below: reads, publishes, writes trails and state'),
    ('ops', '{}', false, true, 'cogo-bus-reclaimer, cogo-bus-retention, the cogo CLI: every route, prunes'),
    ('reader', '{}', false, true, 'cogo-metrics-server, dashboards: reads (and the metrics tables)'),
    ('tenant', '{}', false, false, 'a tenant token''s reads (017): its tenant''s rows only'),
    ('brain', '{orchestrator/decide,orchestrator/workflow,orchestrator/notify,orchestrator/upgrade}', true, true,
     'cogo-orchestrator-brain: decide, the workflow engine, notify, upgrade; cancels runs'' steps'),
    ('executor', '{orchestrator/execute}', false, true, 'cogo-executor-dispatcher: admits and hands off'),
    ('gateway_chat', '{gateway/chat}', false, true, 'cogo-gateway-chat'),
    ('rag_embed', '{rag/embed}', false, true, 'cogo-rag-embed'),
    ('rag_dispatcher', '{rag/query}', false, true, 'cogo-rag-dispatcher'),
    ('kg_builder', '{kg/build}', false, true, 'cogo-kg-builder'),
    ('codegen', '{codegen/generate}', false, true, 'cogo-codegen-service'),
    ('build_test', '{code/build-test,code/promote}', false, true, 'cogo-build-test-worker'))
    AS v (kind, routes, cancels_any, login, purpose);

  -- The roles of 010 and 017 under their configured names.
  IF prefix <> 'cogo' THEN
    FOR k IN SELECT kind, name FROM cogo_db_roles WHERE kind IN ('edge', 'worker', 'ops', 'reader', 'tenant') LOOP
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = k.name) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', k.name);
      END IF;
      old_oid := (SELECT oid FROM pg_roles WHERE rolname = 'cogo_' || k.kind);
      new_name := k.name;
      FOR r IN SELECT a.privilege_type AS priv FROM pg_namespace n, aclexplode(n.nspacl) a
               WHERE n.nspname = 'public' AND a.grantee = old_oid LOOP
        EXECUTE format('GRANT %s ON SCHEMA public TO %I', r.priv, new_name);
        EXECUTE format('REVOKE %s ON SCHEMA public FROM %I', r.priv, 'cogo_' || k.kind);
      END LOOP;
      FOR r IN SELECT c.oid::regclass AS rel, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS what,
                      a.privilege_type AS priv
               FROM pg_class c, aclexplode(c.relacl) a
               WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = old_oid LOOP
        EXECUTE format('GRANT %s ON %s %s TO %I', r.priv, r.what, r.rel, new_name);
        EXECUTE format('REVOKE %s ON %s %s FROM %I', r.priv, r.what, r.rel, 'cogo_' || k.kind);
      END LOOP;
      FOR r IN SELECT c.oid::regclass AS rel, t.attname, a.privilege_type AS priv
               FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid, aclexplode(t.attacl) a
               WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = old_oid LOOP
        EXECUTE format('GRANT %s (%I) ON %s TO %I', r.priv, r.attname, r.rel, new_name);
        EXECUTE format('REVOKE %s (%I) ON %s FROM %I', r.priv, r.attname, r.rel, 'cogo_' || k.kind);
      END LOOP;
      FOR r IN SELECT p.oid::regprocedure AS fn, a.privilege_type AS priv
               FROM pg_proc p, aclexplode(p.proacl) a
               WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = old_oid LOOP
        EXECUTE format('GRANT %s ON FUNCTION %s TO %I', r.priv, r.fn, new_name);
        EXECUTE format('REVOKE %s ON FUNCTION %s FROM %I', r.priv, r.fn, 'cogo_' || k.kind);
      END LOOP;
      FOR r IN SELECT d.defaclrole::regrole AS owner,
                      CASE WHEN d.defaclnamespace = 0 THEN ''
                           ELSE 'IN SCHEMA ' || d.defaclnamespace::regnamespace END AS scope,
                      CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                           WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES'
                                           WHEN 'n' THEN 'SCHEMAS' END AS what,
                      a.privilege_type AS priv
               FROM pg_default_acl d, aclexplode(d.defaclacl) a WHERE a.grantee = old_oid LOOP
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s %s GRANT %s ON %s TO %I',
                       r.owner, r.scope, r.priv, r.what, new_name);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s %s REVOKE %s ON %s FROM %I',
                       r.owner, r.scope, r.priv, r.what, 'cogo_' || k.kind);
      END LOOP;
      FOR r IN SELECT p.polname, p.polrelid::regclass AS rel,
                      (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC' WHEN x = old_oid THEN quote_ident(new_name)
                                              ELSE x::regrole::text END, ', ')
                       FROM unnest(p.polroles) AS x) AS roles
               FROM pg_policy p WHERE old_oid = ANY (p.polroles) LOOP
        EXECUTE format('ALTER POLICY %I ON %s TO %s', r.polname, r.rel, r.roles);
      END LOOP;
    END LOOP;
    -- Memberships among them (017: every daemon role may switch to the tenant role). The old
    -- memberships are the cluster's, so they stay.
    FOR r IN SELECT g.name AS grp, m.name AS member
             FROM cogo_db_roles g, cogo_db_roles m
             WHERE g.kind IN ('edge', 'worker', 'ops', 'reader', 'tenant')
               AND m.kind IN ('edge', 'worker', 'ops', 'reader', 'tenant')
               AND pg_has_role('cogo_' || m.kind, 'cogo_' || g.kind, 'MEMBER') AND g.kind <> m.kind LOOP
      EXECUTE format('GRANT %I TO %I', r.grp, r.member);
    END LOOP;
  END IF;

  -- The route roles: in the worker group, so they keep its grants and its policies.
  FOR k IN SELECT name FROM cogo_db_roles WHERE routes <> '{}' LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = k.name) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', k.name);
    END IF;
    EXECUTE format('GRANT %I TO %I', prefix || '_worker', k.name);
  END LOOP;

  EXECUTE format($p$
    CREATE POLICY own_routes ON agent_messages AS RESTRICTIVE FOR UPDATE TO %I
      USING ((service || '/' || role) = ANY ((SELECT cogo_worker_routes())::text[])
             OR (SELECT cogo_worker_cancels_any()))
      WITH CHECK ((service || '/' || role) = ANY ((SELECT cogo_worker_routes())::text[])
                  OR ((SELECT cogo_worker_cancels_any()) AND status = 'cancelled'))$p$, prefix || '_worker');
END $$;
