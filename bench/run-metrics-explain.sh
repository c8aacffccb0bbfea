#!/usr/bin/env bash
# The metrics server's statements on a large bus: makes a private cluster, migrates it, fills it
# with a week of synthetic history in time order (MESSAGES rows of agent_messages, default 2
# million, one final bus_events row each carrying its claim, decisions, usage and workflow runs),
# then prints EXPLAIN (ANALYZE, BUFFERS) of each statement as cogo-metrics-server runs it.
# Usage: bench/run-metrics-explain.sh [build dir]   (docs/metrics.md shows a run)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$repo/build}
messages=${MESSAGES:-2000000}
# shellcheck source=../scripts/lib/pg.sh
source "$repo/scripts/lib/pg.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/cogo-metrics-explain.XXXXXX")
# A port the kernel finds free now (a fixed range can collide with other clusters' client sockets).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'pg_stop "$dir"; rm -rf "$dir"' EXIT
pg_start "$dir" "$port"
url="postgresql://postgres@127.0.0.1:$port/cogo"
COGO_DATABASE_URL=$url "$build_dir/cogo" migrate >/dev/null
psql() { as_pg "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d cogo -v ON_ERROR_STOP=1 "$@"; }

log "filling $messages messages (a week, in time order)"
psql <<SQL
SET synchronous_commit = off;
INSERT INTO agent_messages (service, role, shard, tenant, payload, status, attempts, created_at,
                            started_at, finished_at, last_error)
SELECT 'svc' || (i % 10), 'role' || (i % 3), 0, 'tenant-' || (i % 20), '{}'::jsonb,
       CASE WHEN i % 100 < 3 THEN 'failed' WHEN i % 100 = 3 THEN 'dead' ELSE 'done' END, 1,
       t, t + (i % 500) * interval '1 millisecond', t + (i % 500 + 20 + i % 80) * interval '1 millisecond',
       CASE WHEN i % 100 < 4 THEN 'handler_error: synthetic' END
FROM generate_series(1, $messages) AS i,
     LATERAL (SELECT now() - interval '7 days' + (i::float8 / $messages) * interval '7 days' AS t) x;
-- A live tail: due, delayed and running messages.
INSERT INTO agent_messages (service, role, shard, tenant, payload, status, retry_at, created_at)
SELECT 'svc' || (i % 10), 'role' || (i % 3), 0, 'tenant-' || (i % 20), '{}'::jsonb, 'queued',
       CASE WHEN i % 4 = 0 THEN now() + interval '1 minute' END, now() - (i % 60) * interval '1 second'
FROM generate_series(1, 2000) AS i;
INSERT INTO agent_messages (service, role, shard, tenant, payload, status, attempts, created_at, started_at,
                            lease_owner, lease_expires_at)
SELECT 'svc' || (i % 10), 'role' || (i % 3), 0, 'tenant-' || (i % 20), '{}'::jsonb, 'running', 1,
       now() - interval '2 seconds', now() - interval '1 second', 'w', now() + interval '30 seconds'
FROM generate_series(1, 500) AS i;
INSERT INTO bus_events (message_id, event, service, role, tenant, at, detail)
SELECT id, CASE status WHEN 'done' THEN 'completed' WHEN 'dead' THEN 'dead_lettered' ELSE 'failed' END,
       service, role, tenant, finished_at,
       jsonb_build_object('claimed_at', started_at, 'owner', 'w', 'attempt', 1, 'fence', 1)
         || CASE WHEN status <> 'done' THEN jsonb_build_object('error', last_error) ELSE '{}' END
FROM agent_messages WHERE finished_at IS NOT NULL ORDER BY id;
INSERT INTO message_usage (message_id, attempt, tenant, service, role, agent_id, version, model,
                           input_tokens, output_tokens, cost_usd, outcome, recorded_at)
SELECT id, 1, tenant, service, role, 'agent-' || (id % 5), 'v1', 'model-' || (id % 3), 100, 50, 0.0002, 'done', finished_at
FROM agent_messages WHERE id % 4 = 0 AND finished_at IS NOT NULL ORDER BY id;
ALTER TABLE bus_events DISABLE TRIGGER bus_events_decided;
INSERT INTO decisions (message_id, tenant, intent, matched_by, rule_intent, target, agent_id, model, version,
                       max_cost_usd, max_tokens, ttl_ms, rationale, source, decided_at)
SELECT id, tenant, 'chat', 'rule', 'chat', 'gateway/chat', 'agent-' || (id % 5), 'm', 'v1', 0.05, 4000, 60000, '',
       'api', created_at
FROM agent_messages WHERE id % 10 = 0 ORDER BY id;
ALTER TABLE bus_events ENABLE TRIGGER bus_events_decided;
INSERT INTO workflow_definitions (workflow_id, version, digest, definition) VALUES ('wf', 1, 'd', '{}');
INSERT INTO workflow_runs (tenant, workflow_id, version, status, parameters, created_at, finished_at)
SELECT 'tenant-' || (i % 20), 'wf', 1, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, '{}',
       now() - interval '7 days' + (i::float8 / 100000) * interval '7 days',
       now() - interval '7 days' + (i::float8 / 100000) * interval '7 days' + interval '3 seconds'
FROM generate_series(1, 100000) AS i;
INSERT INTO workflow_steps (run_id, node, activation, node_type, status, message_id, started_at, finished_at)
SELECT id, 'work', 1, 'publish', 'succeeded', id * 20, created_at, finished_at FROM workflow_runs;
INSERT INTO workflow_steps (run_id, node, activation, node_type, status, output, started_at, finished_at)
SELECT id, 'gate', 1, 'gate', CASE WHEN status = 'failed' THEN 'failed' ELSE 'succeeded' END,
       jsonb_build_object('verdict', CASE WHEN status = 'failed' THEN 'fail' ELSE 'pass' END), created_at, finished_at
FROM workflow_runs;
VACUUM ANALYZE;
SQL
psql -Atc "SELECT 'agent_messages ' || count(*) FROM agent_messages UNION ALL SELECT 'bus_events ' || count(*) FROM bus_events
           UNION ALL SELECT 'pg_size_pretty(agent_messages) ' || pg_size_pretty(pg_total_relation_size('agent_messages'))"

# The statements exactly as the server sends them (after its kReadSettings), parameters inlined.
statements=$(sed -n '/R"SQL(/,/)SQL"/p' "$repo/src/metrics/statements.h")
statement() {
  awk -v n="$1" '$0 ~ "k"n" = R\"SQL\\(" {on=1; next} on && /\)SQL"/ {sub(/\)SQL".*/, ""); print; exit} on {print}' \
      <<<"$statements"
}
explain() {
  local name=$1; shift
  local sql
  sql=$(statement "$name")
  local i=1
  for value in "$@"; do sql=${sql//\$$i/$value}; i=$((i + 1)); done
  printf '\n== %s (%s)\n' "$name" "$*"
  psql -c "SET work_mem = '64MB'" -c "SET jit = off" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $sql" | grep -v '^$'
}
explain Latency 900 NULL
explain Latency 86400 NULL

# The hourly latency rollup (sql/020) as the server's rollup task writes it: each finished hour
# of the week once, timed, then the 24h window from it and its two edges.
log "rolling up the week's hours"
started=$(date +%s.%N)
hours=0
while hour=$(psql -Atc "$(statement RollupNextHour)") && [ -n "$hour" ]; do
  roll=$(statement RollupHour); roll=${roll//\$1/$hour}
  psql -c "BEGIN" -c "$roll" -c "$(statement RollupAdvance | sed "s/\$1/($hour + 3600)/")" -c "COMMIT" >/dev/null
  hours=$((hours + 1))
done
printf '\n== rollup: %s hours in %.1f s; bus_latency_hours %s\n' "$hours" "$(awk "BEGIN {print $(date +%s.%N) - $started}")" \
  "$(psql -Atc "SELECT count(*) || ' rows, ' || pg_size_pretty(pg_total_relation_size('bus_latency_hours')) FROM bus_latency_hours")"
span=$(psql -At -F' ' -c "$(statement LatencyRolledSpan | sed 's/\$1/86400/')")
explain LatencyFromRollup 86400 NULL ${span% *} ${span#* }
explain LatencyFromRollup 86400 "'tenant-3'" ${span% *} ${span#* }
explain Depth NULL
explain FailureTrend 86400 3600 NULL
explain FailureReasons 86400 NULL
explain Spend 604800 "'tenant-3'"
explain Decisions 86400 NULL
explain WorkflowRuns 86400 NULL NULL
explain RecentRuns NULL NULL 20
