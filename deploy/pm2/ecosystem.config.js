// PM2 ecosystem for cogo: `pm2 start deploy/pm2/ecosystem.config.js`.
// Every daemon is a native binary (interpreter none) run by its standard name. Settings come
// from one env file (COGO_ENV_FILE, default /etc/cogo/cogo.env, mode 600: COGO_DATABASE_URL,
// COGO_JWT_SECRET, COGO_PUBLISHABLE_KEY, ...); variables already in the environment of
// `pm2 start` win over the file. Where things are:
//   COGO_BIN_DIR   the executables (default /usr/local/bin)
//   COGO_LOG_DIR   one out and one err log per daemon (default PM2's own ~/.pm2/logs)
//   COGO_EDGE_PORT / COGO_BRAIN_PORT   HTTP ports (the daemons read them; 8780 / 8781)
// Database logins: each daemon connects as its own role's login (sql/023: a worker's login claims
// and finishes only its routes' messages). Leave the user out of COGO_DATABASE_URL and this file
// sets PGUSER per daemon to <COGO_DB_ROLE_PREFIX, default cogo>_<role>_login (deploy/sql/users.sql
// makes them); keep the passwords in a pgpass file (PGPASSFILE, mode 600). A URL that names a
// user overrides PGUSER for every daemon.
// Stopping: PM2 sends SIGINT, which the daemons treat like SIGTERM (drain: running handlers get
// COGO_DRAIN_GRACE_MS), and SIGKILLs after kill_timeout — kept above the grace here.
'use strict';

const fs = require('fs');
const path = require('path');

// KEY=VALUE lines; '#' comments; optional single or double quotes around the value.
function readEnvFile(file) {
  const env = {};
  if (!fs.existsSync(file)) return env;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (!m) continue;
    let value = m[2].trim();
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    env[m[1]] = value;
  }
  return env;
}

const envFile = process.env.COGO_ENV_FILE || '/etc/cogo/cogo.env';
const fromFile = readEnvFile(envFile);
const setting = (name, fallback) => process.env[name] || fromFile[name] || fallback;

const binDir = setting('COGO_BIN_DIR', '/usr/local/bin');
const logDir = setting('COGO_LOG_DIR', '');
const drainGraceMs = Number(setting('COGO_DRAIN_GRACE_MS', '30000'));

// The COGO_* settings of the file, overridden by those of the environment of `pm2 start`.
const env = { COGO_DRAIN_GRACE_MS: String(drainGraceMs) };
for (const source of [fromFile, process.env]) {
  for (const [k, v] of Object.entries(source)) if (k.startsWith('COGO_')) env[k] = v;
}

// Each daemon and the database role it logs in as (cogo_db_roles, sql/023).
const daemons = {
  'cogo-edge': 'edge',
  'cogo-orchestrator-brain': 'brain',
  'cogo-executor-dispatcher': 'executor',
  'cogo-gateway-chat': 'gateway_chat',
  'cogo-rag-embed': 'rag_embed',
  'cogo-rag-dispatcher': 'rag_dispatcher',
  'cogo-kg-builder': 'kg_builder',
  'cogo-codegen-service': 'codegen',
  'cogo-build-test-worker': 'build_test',
  'cogo-bus-reclaimer': 'ops',
  'cogo-bus-retention': 'ops',
  'cogo-metrics-server': 'reader',
};
const rolePrefix = setting('COGO_DB_ROLE_PREFIX', 'cogo');

module.exports = {
  apps: Object.entries(daemons).map(([name, role]) => ({
    name,
    script: path.join(binDir, name),
    interpreter: 'none',
    exec_mode: 'fork',
    instances: 1,
    cwd: setting('COGO_WORKDIR', process.cwd()),
    env: { ...env, PGUSER: `${rolePrefix}_${role}_login` },
    autorestart: true,
    // 100 ms, times 1.5 per restart up to 15 s; PM2 resets it once a process stays up 30 s.
    exp_backoff_restart_delay: 100,
    min_uptime: 30000,
    max_restarts: 50,
    kill_timeout: drainGraceMs + 15000,
    ...(logDir ? { out_file: path.join(logDir, `${name}.out.log`),
                   error_file: path.join(logDir, `${name}.err.log`) } : {}),
    time: true,
    merge_logs: true,
  })),
};
