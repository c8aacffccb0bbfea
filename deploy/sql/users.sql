-- Login users for the daemons: <role>_login in each role that cogo_db_roles marks `login`
-- (sql/010_roles.sql, sql/023_route_roles.sql; the names follow the prefix `cogo migrate
-- --role-prefix` chose, cogo by default). Run it as the schema's owner (the role that ran
-- `cogo migrate`) or a superuser, after the migrations, with the passwords in the environment
-- (psql's \getenv; nothing lands in shell history or argv):
--
--   COGO_EDGE_DB_PASSWORD=... COGO_OPS_DB_PASSWORD=... COGO_READER_DB_PASSWORD=... \
--   COGO_BRAIN_DB_PASSWORD=... COGO_EXECUTOR_DB_PASSWORD=... COGO_GATEWAY_CHAT_DB_PASSWORD=... \
--   COGO_RAG_EMBED_DB_PASSWORD=... COGO_RAG_DISPATCHER_DB_PASSWORD=... \
--   COGO_KG_BUILDER_DB_PASSWORD=... COGO_CODEGEN_DB_PASSWORD=... COGO_BUILD_TEST_DB_PASSWORD=... \
--   psql "$OWNER_URL" -v ON_ERROR_STOP=1 -f deploy/sql/users.sql
--
-- Running it again sets the passwords again (rotation). Then give each daemon its login
-- (default names):
--   cogo-edge                  cogo_edge_login
--   cogo-orchestrator-brain    cogo_brain_login          cogo-executor-dispatcher  cogo_executor_login
--   cogo-gateway-chat          cogo_gateway_chat_login   cogo-rag-embed            cogo_rag_embed_login
--   cogo-rag-dispatcher        cogo_rag_dispatcher_login cogo-kg-builder           cogo_kg_builder_login
--   cogo-codegen-service       cogo_codegen_login        cogo-build-test-worker    cogo_build_test_login
--   reclaimer, retention, `cogo`  cogo_ops_login
--   metrics server, dashboards    cogo_reader_login
-- A worker login may claim and finish only its own routes' messages (sql/023).
\getenv edge_password COGO_EDGE_DB_PASSWORD
\getenv ops_password COGO_OPS_DB_PASSWORD
\getenv reader_password COGO_READER_DB_PASSWORD
\getenv brain_password COGO_BRAIN_DB_PASSWORD
\getenv executor_password COGO_EXECUTOR_DB_PASSWORD
\getenv gateway_chat_password COGO_GATEWAY_CHAT_DB_PASSWORD
\getenv rag_embed_password COGO_RAG_EMBED_DB_PASSWORD
\getenv rag_dispatcher_password COGO_RAG_DISPATCHER_DB_PASSWORD
\getenv kg_builder_password COGO_KG_BUILDER_DB_PASSWORD
\getenv codegen_password COGO_CODEGEN_DB_PASSWORD
\getenv build_test_password COGO_BUILD_TEST_DB_PASSWORD

SELECT format('CREATE ROLE %I LOGIN IN ROLE %I', name || '_login', name)
FROM cogo_db_roles
WHERE login AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name || '_login')
\gexec

SELECT format('ALTER ROLE %I PASSWORD %L', cogo_role(kind) || '_login', password)
FROM (VALUES ('edge', :'edge_password'), ('ops', :'ops_password'), ('reader', :'reader_password'),
             ('brain', :'brain_password'), ('executor', :'executor_password'),
             ('gateway_chat', :'gateway_chat_password'), ('rag_embed', :'rag_embed_password'),
             ('rag_dispatcher', :'rag_dispatcher_password'), ('kg_builder', :'kg_builder_password'),
             ('codegen', :'codegen_password'), ('build_test', :'build_test_password')) AS p (kind, password)
\gexec
