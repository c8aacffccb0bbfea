#!/usr/bin/env bash
# run-admission-bench.sh: executor admissions per second for one tenant and for several, this
# tree against earlier revisions (the tenant daily cap's implementations), in one run.
#
# Each measurement, on a throwaway cluster (default durability) and a fresh database migrated by
# that revision's `cogo migrate`:
#  1. --usage rows of today's usage spread over the tenants (a busy day so far), then --messages
#     execute messages (0.01 USD each, a cap they never reach) spread over --tenants tenants.
#  2. The revision's cogo-executor-dispatcher (--concurrency 8, --batch-size 8) admits them while
#     a drainer ends the hand-offs 500 at a time and records 0.001 USD of usage for each, as
#     target workers would.
#  3. admissions/s = admitted / (last completion - first claim), from the messages' own times.
# Rounds interleave the revisions so that the shared host's noise falls on each alike; the table
# shows the median per revision and its ratio to this tree.
#
# Usage: bench/run-admission-bench.sh [--baselines "REV..."] [--tenants "1 16"] [--messages N]
#                                     [--usage N] [--rounds N]
#   --baselines  revisions to compare with (default: none); each is exported with `git archive`
#                and built (Release, two targets) under $COGO_BENCH_BUILD_DIR/rev-REV
#   --tenants    tenant counts to measure (default "1 16")
#   --messages   execute messages per measurement (default 3000)
#   --usage      usage rows recorded earlier today (default 20000)
#   --rounds     rounds (default 3)
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-admission-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

baselines="" tenant_counts="1 16" messages=3000 usage=20000 rounds=3
while (($#)); do
  case $1 in
    --baselines) baselines=$2; shift ;;
    --tenants) tenant_counts=$2; shift ;;
    --messages) messages=$2; shift ;;
    --usage) usage=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
jobs=${COGO_JOBS:-$(nproc)}
source "$repo/bench/lib/common.sh"
bench_tools
bench_build cogo cogo-executor-dispatcher

# variant name -> directory holding its cogo and cogo-executor-dispatcher
declare -A bin_dir=([current]=$build_dir)
variants=(current)
for rev in $baselines; do
  commit=$(git -C "$repo" rev-parse --short "$rev^{commit}") || die "unknown revision $rev"
  src=$build_dir/rev-$commit
  if [ ! -x "$src/build-release/cogo-executor-dispatcher" ]; then
    log "building $rev ($commit)"
    rm -rf "$src" && mkdir -p "$src"
    git -C "$repo" archive "$commit" | tar -x -C "$src"
    cmake -S "$src" -B "$src/build-release" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$src/build-release" -j "$jobs" --target cogo cogo-executor-dispatcher >/dev/null
  fi
  bin_dir[$rev]=$src/build-release
  variants+=("$rev")
done

bench_cluster
policy=$scratch/policy.json
cat >"$policy" <<'JSON'
{
  "default": {
    "allowed_models": ["offline-deterministic"], "allowed_versions": ["1.0.0"],
    "max_cost_usd": 1.0, "max_tokens": 10000, "default_ttl_ms": 60000, "max_ttl_ms": 3600000,
    "max_attempts": 3},
  "prices": {"offline-deterministic": {"usd_per_1k_input": 0, "usd_per_1k_output": 0}},
  "tenants": {"default_daily_cap_usd": 1000000}
}
JSON

psql_admin() { "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

# measure VARIANT TENANTS: prints admissions/s
measure() {
  local variant=$1 tenants=$2 dir=${bin_dir[$1]}
  psql_admin -c "DROP DATABASE IF EXISTS cogo WITH (FORCE)" -c "CREATE DATABASE cogo"
  COGO_DATABASE_URL=$url "$dir/cogo" migrate >/dev/null
  psql_q -v usage="$usage" -v messages="$messages" -v tenants="$tenants" <<'SQL'
INSERT INTO message_usage (message_id, attempt, tenant, service, role, cost_usd, outcome, recorded_at)
SELECT i, 1, 'tenant-' || (i % :tenants), 'gateway', 'chat', 0.001, 'completed',
       date_trunc('day', now()) + (now() - date_trunc('day', now())) * random()
FROM generate_series(1, :usage) i;
INSERT INTO agent_messages (service, role, tenant, payload)
SELECT 'orchestrator', 'execute', 'tenant-' || (i % :tenants),
       jsonb_build_object('__assignment', jsonb_build_object(
         'agent_id', 'bench', 'version', '1.0.0', 'model', 'offline-deterministic',
         'budget', jsonb_build_object('maxCostUsd', 0.01, 'maxTokens', 100),
         'ttl_ms', 3600000, 'issued_at', (extract(epoch FROM now()) * 1000)::bigint,
         'target', jsonb_build_object('service', 'gateway', 'role', 'chat')))
FROM generate_series(1, :messages) i;
VACUUM ANALYZE;
SQL
  "$dir/cogo-executor-dispatcher" --database-url "$url" --policy "$policy" --concurrency 8 \
    --batch-size 8 --log-level warn >"$scratch/executor-$variant.log" 2>&1 &
  local executor=$!
  (
    while :; do
      psql_q -c "WITH ended AS (
          UPDATE agent_messages SET status = 'done', finished_at = now()
          WHERE id IN (SELECT id FROM agent_messages WHERE service = 'gateway' AND role = 'chat'
                       AND status = 'queued' LIMIT 500 FOR UPDATE SKIP LOCKED)
          RETURNING id, tenant)
        INSERT INTO message_usage (message_id, attempt, tenant, service, role, cost_usd, outcome)
        SELECT id, 1, tenant, 'gateway', 'chat', 0.001, 'completed' FROM ended" >/dev/null
      sleep 0.05
    done
  ) &
  local drainer=$!
  local waited=0
  until [ "$(psql_q -Atc "SELECT count(*) FROM agent_messages WHERE role = 'execute' AND status IN ('queued', 'running')")" = 0 ]; do
    sleep 0.2
    waited=$((waited + 1))
    ((waited < 3000)) || { kill "$executor" "$drainer"; die "$variant: admissions did not finish in 600 s"; }
    kill -0 "$executor" 2>/dev/null || { cat "$scratch/executor-$variant.log" >&2; die "$variant: the executor exited"; }
  done
  kill "$drainer"; wait "$drainer" 2>/dev/null || true
  kill "$executor"; wait "$executor" 2>/dev/null || true
  local refused
  refused=$(psql_q -Atc "SELECT count(*) FROM agent_messages WHERE role = 'execute' AND status <> 'done'")
  [ "$refused" = 0 ] || die "$variant: $refused execute messages were not admitted"
  psql_q -Atc "SELECT round(count(*) / extract(epoch FROM max(finished_at) - min(started_at)))
               FROM agent_messages WHERE role = 'execute'"
}

declare -A rates
for ((round = 1; round <= rounds; round++)); do
  for tenants in $tenant_counts; do
    for variant in "${variants[@]}"; do
      rate=$(measure "$variant" "$tenants")
      log "round $round, $tenants tenant(s), $variant: $rate admissions/s"
      rates[$variant,$tenants]+="$rate "
    done
  done
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf '\n%-12s %8s %18s %10s   %s\n' revision tenants "admissions/s" "vs current" "rounds"
for tenants in $tenant_counts; do
  base=$(median "${rates[current,$tenants]}")
  for variant in "${variants[@]}"; do
    m=$(median "${rates[$variant,$tenants]}")
    printf '%-12s %8s %18s %10s   %s\n' "$variant" "$tenants" "$m" \
      "$(awk -v m="$m" -v b="$base" 'BEGIN {printf "%.2f", m / b}')" "${rates[$variant,$tenants]}"
  done
done
psql_q -Atc "SELECT 'server: PostgreSQL ' || current_setting('server_version') || ', ' || $(nproc) || ' cores'"
