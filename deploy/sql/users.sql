-- Login users for the daemons, one per group role of sql/010_roles.sql. Run it as the schema's
-- owner (the role that ran `cogo migrate`) or a superuser, after the migrations, with the
-- passwords in the environment (psql's \getenv; nothing lands in shell history or argv):
--
--   COGO_EDGE_DB_PASSWORD=... COGO_WORKER_DB_PASSWORD=... COGO_OPS_DB_PASSWORD=... \
--   COGO_READER_DB_PASSWORD=... psql "$OWNER_URL" -v ON_ERROR_STOP=1 -f deploy/sql/users.sql
--
-- Running it again sets the passwords again (rotation). Then give each daemon its URL:
--   cogo-edge                         cogo_edge_login
--   the brain, executor, workers      cogo_worker_login
--   reclaimer, retention, `cogo`      cogo_ops_login
--   metrics server, dashboards        cogo_reader_login
\getenv edge_password COGO_EDGE_DB_PASSWORD
\getenv worker_password COGO_WORKER_DB_PASSWORD
\getenv ops_password COGO_OPS_DB_PASSWORD
\getenv reader_password COGO_READER_DB_PASSWORD

SELECT format('CREATE ROLE %I LOGIN IN ROLE %I', login, role)
FROM (VALUES ('cogo_edge_login', 'cogo_edge'), ('cogo_worker_login', 'cogo_worker'),
             ('cogo_ops_login', 'cogo_ops'), ('cogo_reader_login', 'cogo_reader')) AS u (login, role)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login)
\gexec

ALTER ROLE cogo_edge_login PASSWORD :'edge_password';
ALTER ROLE cogo_worker_login PASSWORD :'worker_password';
ALTER ROLE cogo_ops_login PASSWORD :'ops_password';
ALTER ROLE cogo_reader_login PASSWORD :'reader_password';
