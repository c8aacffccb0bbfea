#!/usr/bin/env bash
# run-scaling-bench.sh: how the drain rate grows as workers are added against one PostgreSQL,
# and how many server connections each step holds (docs/scaling.md). Each step drains the same
# batch-published messages with W Workers (each with its own claim, flush and LISTEN
# connections, as W worker processes would have) on a throwaway cluster, and samples
# pg_stat_activity while it runs.
#   bench/run-scaling-bench.sh [--workers "1 2 4 8 16 32"] [--messages 20000] [--runs 1]
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
jobs=${COGO_JOBS:-$(nproc)}
worker_steps="1 2 4 8 16 32"
messages=20000
runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) worker_steps=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "run-scaling-bench: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf 'run-scaling-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/bench/lib/common.sh"
bench_build cogo cogo-bench
bench_cluster
COGO_DATABASE_URL=$url "$build_dir/cogo" migrate >/dev/null

# The most connections open at once while `pid` runs, sampled every 50 ms.
peak_connections() {
  local pid=$1 peak=0 n
  while kill -0 "$pid" 2>/dev/null; do
    n=$(psql_q -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" 2>/dev/null || echo 0)
    ((n > peak)) && peak=$n
    sleep 0.05
  done
  echo "$peak"
}

printf '\n%-8s %12s %10s %14s\n' workers "drain msg/s" "vs 1" "peak conns"
base=""
for w in $worker_steps; do
  out=$scratch/drain-$w.json
  "$build_dir/bench/cogo-bench" drain --database-url "$url" --workers "$w" --messages "$messages" \
    --runs "$runs" --json "$out" >"$scratch/drain-$w.log" 2>&1 &
  bench_pid=$!
  peak=$(peak_connections "$bench_pid")
  wait "$bench_pid" || { cat "$scratch/drain-$w.log" >&2; die "cogo-bench drain --workers $w failed"; }
  rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["drain"]["median_msg_per_s"]))' "$out")
  base=${base:-$rate}
  printf '%-8s %12s %10s %14s\n' "$w" "$rate" "$(awk -v r="$rate" -v b="$base" 'BEGIN {printf "%.2fx", r / b}')" "$peak"
done
psql_q -Atc "SELECT 'server: PostgreSQL ' || current_setting('server_version') || ', max_connections ' || current_setting('max_connections') || ', ' || $(nproc) || ' cores'"
