#!/usr/bin/env bash
# run-codegen-bench.sh: the codeBuildTest flow's own overhead and the sandbox's start-up cost
# (issue 14). Starts a throwaway PostgreSQL cluster on a free port, the brain, codegen and
# build-test daemons against a git copy of examples/tinylib, then
#  1. cogo-sandbox-bench: `true` through the sandbox vs a plain fork+exec, per command;
#  2. N codeBuildTest runs, one at a time, with the sample's correct patch and trivial build and
#     test commands: start (run created) -> gate verdict (gate step finished), minus the
#     commands' own durations from report.json, p50/p99.
#   bench/run-codegen-bench.sh [RUNS]        (default 50)
# Environment: COGO_BENCH_BUILD_DIR (default build, the test build: the flow waits on the
# database, not on our CPU), COGO_JOBS.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build}
jobs=${COGO_JOBS:-$(nproc)}
runs=${1:-50}

log() { printf 'run-codegen-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/scripts/lib/pg.sh"

cmake -S "$repo" -B "$build_dir" >/dev/null
cmake --build "$build_dir" -j "$jobs" --target cogo cogo-orchestrator-brain cogo-codegen-service \
  cogo-build-test-worker cogo-sandbox-bench >/dev/null

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-codegen-bench.XXXXXX")
chmod 755 "$scratch"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop "$scratch/pg"
  rm -rf "$scratch"
}
trap cleanup EXIT
port=$(free_port 55433)
pg_start "$scratch/pg" "$port"
export COGO_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/cogo"
"$build_dir/cogo" migrate >/dev/null
log "cluster on port $port ($scratch)"

log "sandbox start-up per command"
"$build_dir/bench/cogo-sandbox-bench" --runs 200

mkdir -p "$scratch/repos"
cp -r "$repo/examples/tinylib" "$scratch/repos/tinylib"
git -C "$scratch/repos/tinylib" init -q && git -C "$scratch/repos/tinylib" add -A &&
  git -C "$scratch/repos/tinylib" -c user.name=b -c user.email=b@b commit -qm base
export COGO_JWT_SECRET=bench-secret-0123456789abcdef0123456789
export COGO_ARTIFACTS_DIR=$scratch/artifacts COGO_REPO_ROOTS=$scratch/repos
brain_port=$(free_port $((port + 1)))
cd "$repo"
"$build_dir/cogo-orchestrator-brain" --port "$brain_port" >"$scratch/brain.log" 2>&1 & pids+=($!)
"$build_dir/cogo-codegen-service" >"$scratch/codegen.log" 2>&1 & pids+=($!)
"$build_dir/cogo-build-test-worker" --workspace-root "$scratch/ws" >"$scratch/buildtest.log" 2>&1 & pids+=($!)
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$brain_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
token=$("$build_dir/cogo" token --role authenticated --tenant bench)
psql() { as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d cogo -Atqc "$1"; }

log "$runs codeBuildTest runs, one at a time"
for i in $(seq 1 "$runs"); do
  body=$(python3 - "$repo" "$scratch/repos/tinylib" "$i" <<'PY'
import json, sys
b = json.load(open(sys.argv[1] + "/examples/codegen-tasks/fix-clamp.json"))
p = b["parameters"]
p.update(repo=sys.argv[2], taskId="bench-%s" % sys.argv[3], build="",
         test="echo '100% tests passed, 0 tests failed out of 1'")
print(json.dumps(b))
PY
)
  id=$(curl -fsS -X POST "http://127.0.0.1:$brain_port/api/workflows/execute" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["runId"])')
  for _ in $(seq 1 3000); do
    [ "$(psql "SELECT count(*) FROM workflow_steps WHERE run_id = $id AND node = 'gate' AND finished_at IS NOT NULL")" = 1 ] && break
    sleep 0.01
  done
done
psql "SELECT count(*) FILTER (WHERE g.output->>'verdict' = 'pass') || ' of ' || count(*) || ' gates passed' FROM workflow_steps g WHERE g.node = 'gate'"
psql "
WITH o AS (
  SELECT extract(epoch FROM g.finished_at - r.created_at) * 1000 AS total_ms,
         (b.output->'build'->>'duration_ms')::numeric + (b.output->'tests'->>'duration_ms')::numeric AS commands_ms
  FROM workflow_runs r
  JOIN workflow_steps g ON g.run_id = r.id AND g.node = 'gate' AND g.activation = 1
  JOIN workflow_steps b ON b.run_id = r.id AND b.node = 'buildTest' AND b.activation = 1)
SELECT format('start -> gate verdict: p50 %s ms, p99 %s ms; of which commands (sandboxed) p50 %s ms; flow overhead p50 %s ms, p99 %s ms (n=%s)',
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms)::numeric, 1),
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms)::numeric, 1),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY commands_ms)::numeric, 1),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ms - commands_ms)::numeric, 1),
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total_ms - commands_ms)::numeric, 1),
  count(*))
FROM o"
# Where the time goes: each publish step from its start to its message's end (the worker's
# claim, its work and its commit), and the rest (the engine's hand-offs between steps).
psql "
SELECT format('%s: p50 %s ms, p99 %s ms', node,
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1))
FROM (SELECT node, extract(epoch FROM finished_at - started_at) * 1000 AS ms
      FROM workflow_steps WHERE node IN ('generate', 'buildTest') AND activation = 1) s
GROUP BY node ORDER BY node"
