#!/usr/bin/env bash
# run-partition-check.sh: what partitioning bus_events by day would pay and cost (docs/scaling.md,
# "When the tables grow"), against the table as it is, in one run on a throwaway cluster:
#  1. --events audit rows over 40 days in bus_events (bench/retention/prefill_events.sql), and the
#     same rows in bus_events_by_day: the same columns and indexes, PARTITION BY RANGE (at), one
#     partition per day.
#  2. Pruning everything older than 30 days: `cogo prune --events-max-age 30d` (the daemon's
#     code, batches of 1,000) plus the VACUUM that makes its space reusable, against DROP TABLE
#     of the whole days older than 30 days (the part-day left is what a DELETE would still prune).
#  3. The hot path after pruning: one-row inserts (what every bus statement adds to the trail)
#     and the trail of one message (WHERE message_id = $1 ORDER BY id), through pgbench on each
#     table in turn, as transactions per second.
# The partitioned table is the benchmark's only: sql/ does not partition anything.
#   bench/run-partition-check.sh [--events 2000000] [--seconds 8] [--clients 2] [--bin-dir DIR]
# --bin-dir takes a built `cogo` from DIR instead of building it.
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
jobs=${COGO_JOBS:-$(nproc)}
events=2000000
seconds=8
clients=2
bin_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    *) echo "run-partition-check: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf 'run-partition-check: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/bench/lib/common.sh"
bench_tools
bench_binaries cogo
bench_cluster
COGO_DATABASE_URL=$url "$bin_dir/cogo" migrate >/dev/null
now_s() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN {printf "%.3f", b - a}'; }

log "prefilling $events events over 40 days, and the same rows partitioned by day"
psql_q -v events="$events" -f "$repo/bench/retention/prefill_events.sql" >/dev/null
psql_q >/dev/null <<'SQL'
CREATE TABLE bus_events_by_day (LIKE bus_events INCLUDING DEFAULTS) PARTITION BY RANGE (at);
ALTER TABLE bus_events_by_day ALTER COLUMN id SET DEFAULT nextval(pg_get_serial_sequence('bus_events', 'id'));
SELECT format('CREATE TABLE bus_events_d%s PARTITION OF bus_events_by_day FOR VALUES FROM (%L) TO (%L)',
              to_char(d, 'YYYYMMDD'), d, d + interval '1 day')
FROM generate_series(date_trunc('day', now() - interval '41 days'), date_trunc('day', now() + interval '1 day'),
                     interval '1 day') AS d
\gexec
CREATE INDEX ON bus_events_by_day (message_id, id);
CREATE INDEX ON bus_events_by_day (at);
INSERT INTO bus_events_by_day SELECT * FROM bus_events;
VACUUM ANALYZE bus_events_by_day;
SQL
partitions=$(psql_q -Atc "SELECT count(*) FROM pg_inherits WHERE inhparent = 'bus_events_by_day'::regclass")
prunable=$(psql_q -Atc "SELECT count(*) FROM bus_events WHERE at < now() - interval '30 days'")
log "$events rows each, $prunable older than 30 days; $partitions daily partitions"

log "pruning: cogo prune + VACUUM on bus_events"
t0=$(now_s)
pruned=$(COGO_DATABASE_URL=$url "$bin_dir/cogo" prune --events-max-age 30d --batch-size 1000 \
           --pause-ms 0 | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
delete_s=$(since "$t0")
t0=$(now_s)
psql_q -c "VACUUM bus_events"
vacuum_s=$(since "$t0")
[ -n "$pruned" ] && ((pruned > 0)) || die "cogo prune deleted no events"

log "pruning: DROP TABLE of the partitions wholly older than 30 days"
old_days=$(psql_q -Atc "SELECT string_agg(c.relname, ' ') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'bus_events_by_day'::regclass
    AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz
        <= now() - interval '30 days'")
dropped_rows=0
for p in $old_days; do dropped_rows=$((dropped_rows + $(psql_q -Atc "SELECT count(*) FROM $p"))); done
t0=$(now_s)
psql_q -c "DROP TABLE ${old_days// /, }"
drop_s=$(since "$t0")
dropped=$(wc -w <<<"$old_days")
left=$(psql_q -Atc "SELECT count(*) FROM bus_events_by_day WHERE at < now() - interval '30 days'")

# The hot path: one trail row per transaction, and one message's trail (a file per table:
# prepared statements take no table name as a parameter).
for table in bus_events bus_events_by_day; do
  cat >"$scratch/insert-$table.sql" <<SQL
\\set m random(1, 100000000)
INSERT INTO $table (message_id, event, service, role, tenant, detail)
VALUES (:m, 'completed', 'gateway', 'chat', 'tenant-1', '{"owner": "worker-1", "attempt": 1, "fence": 1}');
SQL
  cat >"$scratch/trail-$table.sql" <<SQL
\\set m random(1, $((events / 4)))
SELECT id, event, at FROM $table WHERE message_id = :m ORDER BY id;
SQL
done
tps_of() {
  local out
  out=$("$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c "$clients" -j "$clients" \
          -T "$seconds" -f "$scratch/$1-$2.sql" cogo 2>&1) || { echo "$out" >&2; die "pgbench $1 $2 failed"; }
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1
}
log "hot path: $seconds s per run, $clients clients, each table in turn"
declare -A tps
for what in insert trail; do
  for table in bus_events bus_events_by_day; do tps[$what-$table]=$(tps_of "$what" "$table"); done
done

awk -v n="$events" -v pruned="$pruned" -v ds="$delete_s" -v vs="$vacuum_s" -v dr="$dropped_rows" \
    -v drs="$drop_s" -v dropped="$dropped" -v left="$left" -v parts="$partitions" \
    -v ip="${tps[insert-bus_events]}" -v ib="${tps[insert-bus_events_by_day]}" \
    -v tp="${tps[trail-bus_events]}" -v tb="${tps[trail-bus_events_by_day]}" 'BEGIN {
  printf "\n%d events over 40 days, in bus_events and in bus_events_by_day (%d daily partitions)\n\n", n, parts
  printf "%-40s %16s %16s %9s\n", "", "bus_events", "by day", "by day/"
  printf "%-40s %16.3f %16.3f %8.3fx\n", "prune > 30 days: seconds", ds + vs, drs, drs / (ds + vs)
  printf "%-40s %16.2f %16.3f %8.3fx\n", "  per pruned row: us", (ds + vs) * 1e6 / pruned, drs * 1e6 / dr, (drs / dr) / ((ds + vs) / pruned)
  printf "%-40s %16d %16d\n", "  rows pruned", pruned, dr
  printf "%-40s %16s %16s\n", "  how", sprintf("DELETE %.1f+VAC %.1f s", ds, vs), sprintf("DROP of %d tables", dropped)
  printf "%-40s %16s %16d\n", "  rows > 30 days left (part of a day)", 0, left
  printf "%-40s %16.0f %16.0f %8.2fx\n", "insert one trail row: tps", ip, ib, ib / ip
  printf "%-40s %16.0f %16.0f %8.2fx\n", "read one message trail: tps", tp, tb, tb / tp
}'
psql_q -Atc "SELECT 'PostgreSQL ' || current_setting('server_version') || ', ' || $(nproc) || ' cores, load ' || '$(cut -d' ' -f1 /proc/loadavg)'"
