#!/usr/bin/env bash
# run-retention.sh: what retention pays per pruned bus_events row, and what one pass of the
# reclaimer's TTL sweep costs, before and after sql/018 (issue 10), in one run.
#
# On a throwaway cluster (default durability) with `cogo migrate` applied:
#  1. --events audit rows over the last 40 days (bench/retention/prefill_events.sql); retention
#     keeps 30 days, so a quarter of them are prunable.
#  2. before: 018's index bus_events_at_order dropped, --before-batches batches of 1,000 with the
#     statement retention ran up to 017 (bench/retention/prune_events_017.sql), through pgbench.
#  3. 018's index built CONCURRENTLY (timed), then `cogo prune --events-max-age 30d` (the
#     daemon's own code, batches of 1,000, no pause) deletes every prunable row that is left.
#  4. --queued messages waiting with an unexpired TTL (bench/retention/prefill_queued.sql); one
#     sweep's pick (LIMIT 500) timed by EXPLAIN ANALYZE, as 017 wrote it (the deadline function
#     on every queued row) and as 018 does (the stored deadline through its partial index).
# Prints microseconds per pruned row before and after and their ratio, and the two sweep times.
#
# Usage: bench/run-retention.sh [--events N] [--before-batches N] [--queued N]
#   --events N          audit rows (default 10000000)
#   --before-batches N  batches timed with the 017 statement (default 5; each scans the table)
#   --queued N          queued messages for the TTL sweep (default 1000000)
# Environment: COGO_BENCH_BUILD_DIR (default build-release; a directory that already holds
# `cogo` is used as it is), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-retention: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

events=10000000 before_batches=5 queued=1000000
while (($#)); do
  case $1 in
    --events) events=$2; shift ;;
    --before-batches) before_batches=$2; shift; ((before_batches >= 1)) || die "--before-batches must be at least 1" ;;
    --queued) queued=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
source "$repo/bench/lib/common.sh"
bench_tools
if [ ! -x "$build_dir/cogo" ]; then
  bash "$repo/scripts/bootstrap.sh"
  cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build_dir" -j "${COGO_JOBS:-$(nproc)}" --target cogo >/dev/null
fi
bench_cluster
COGO_DATABASE_URL=$url "$build_dir/cogo" migrate >/dev/null
dir=$repo/bench/retention
month_ms=$((30 * 24 * 3600 * 1000))
now_s() { date +%s.%N; }

log "prefilling $events events"
psql_q -c "DROP INDEX bus_events_at_order" >/dev/null
psql_q -v events="$events" -f "$dir/prefill_events.sql" >/dev/null
size=$(psql_q -Atc "SELECT pg_size_pretty(pg_total_relation_size('bus_events'))")
prunable=$(psql_q -Atc "SELECT count(*) FROM bus_events WHERE at < now() - interval '30 days'")
log "bus_events: $events rows, $size with indexes, $prunable older than 30 days"

log "before: $before_batches batches of 1000 with the 017 statement"
out=$("$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 1 -t "$before_batches" \
        -D age_ms="$month_ms" -D batch=1000 -f "$dir/prune_events_017.sql" cogo 2>&1) \
  || { echo "$out" >&2; die "pgbench failed"; }
before_ms=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
[ -n "$before_ms" ] || { echo "$out" >&2; die "no latency in pgbench output"; }

log "building bus_events_at_order concurrently (sql/018's statement)"
t0=$(now_s)
psql_q -c "CREATE INDEX CONCURRENTLY IF NOT EXISTS bus_events_at_order ON bus_events (at)"
build_s=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN {printf "%.1f", b - a}')

log "after: cogo prune of every prunable event left"
t0=$(now_s)
pruned=$(COGO_DATABASE_URL=$url "$build_dir/cogo" prune --events-max-age 30d --batch-size 1000 \
           --pause-ms 0 | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
after_s=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN {printf "%.3f", b - a}')
[ -n "$pruned" ] && ((pruned > 0)) || die "cogo prune deleted no events"

log "prefilling $queued queued messages for the TTL sweep"
psql_q -v queued="$queued" -f "$dir/prefill_queued.sql" >/dev/null
explain_ms() {
  psql_q -Atc "EXPLAIN (ANALYZE, FORMAT JSON) $1" | sed -n 's/.*"Execution Time": \([0-9.]*\).*/\1/p'
}
sweep_017="SELECT id, cogo_assignment_deadline(payload, created_at) AS deadline FROM agent_messages
  WHERE status = 'queued' AND payload ? '__assignment'
    AND cogo_assignment_deadline(payload, created_at) <= now()
  LIMIT 500 FOR UPDATE SKIP LOCKED"
sweep_018="SELECT id, ttl_deadline AS deadline FROM agent_messages
  WHERE status = 'queued' AND ttl_deadline <= now()
  ORDER BY ttl_deadline LIMIT 500 FOR UPDATE SKIP LOCKED"
explain_ms "$sweep_017" >/dev/null  # warm the cache for both
sweep_before=$(explain_ms "$sweep_017")
sweep_after=$(explain_ms "$sweep_018")

awk -v b="$before_ms" -v n="$pruned" -v s="$after_s" -v build="$build_s" -v events="$events" \
    -v sb="$sweep_before" -v sa="$sweep_after" -v queued="$queued" 'BEGIN {
  before_us = b * 1000 / 1000; after_us = s * 1e6 / n
  printf "bus_events at %d rows: before (017) %.1f us per pruned row (%.0f ms per batch of 1000)\n", events, before_us, b
  printf "bus_events at %d rows: after  (018) %.2f us per pruned row (%d rows in %.1f s)\n", events, after_us, n, s
  printf "ratio before/after: %.0fx; bus_events_at_order built concurrently in %s s\n", before_us / after_us, build
  printf "keeping up: 3,800 msg/s x 4 events = 15,200 rows/s to prune = %.2f of one core after, %.1f cores before\n", 15200 * after_us / 1e6, 15200 * before_us / 1e6
  printf "TTL sweep pick at %d queued, none expired: before (017) %.1f ms, after (018) %.3f ms\n", queued, sb, sa
}'
