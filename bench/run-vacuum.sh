#!/usr/bin/env bash
# run-vacuum.sh: how claims age between vacuums, with and without sql/007's autovacuum settings.
#
# A claim reads agent_messages_queued_ready from its start, past every entry claimed since the last
# VACUUM. On a throwaway cluster (default durability, default autovacuum_naptime unless
# --naptime) with `cogo migrate` applied, each run pre-fills --finished finished and 20,000
# queued messages (vacuumed), then runs pgbench for --duration seconds: 4 clients, one-message
# producers and one-message claim+complete transactions, 50/50 (bench/vacuum/: cogo's claim
# scan, but one UPDATE per message, so one dead row version per message where cogo leaves two,
# and no audit rows). It prints the throughput of every 15-second interval, how many
# autovacuums ran, and what one claim's index scan reads at the end. Runs alternate between
# 007's settings ("007") and autovacuum's defaults ("default": the reloptions reset).
#
# Usage: bench/run-vacuum.sh [--rounds N] [--duration S] [--finished ROWS] [--naptime S]
#   --rounds N       pairs of runs (default 1)
#   --duration S     seconds per run (default 120)
#   --finished ROWS  finished messages already in the table (default 1000000)
#   --naptime S      set autovacuum_naptime (default: the server's, 60 s)
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-vacuum: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

rounds=1 duration=120 finished=1000000 naptime=
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift; ((rounds >= 1)) || die "--rounds must be at least 1" ;;
    --duration) duration=$2; shift; ((duration >= 15)) || die "--duration must be at least 15" ;;
    --finished) finished=$2; shift ;;
    --naptime) naptime=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
source "$repo/bench/lib/common.sh"
bash "$repo/scripts/bootstrap.sh"
bench_tools
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "${COGO_JOBS:-$(nproc)}" --target cogo >/dev/null
bench_cluster
COGO_DATABASE_URL=$url "$build_dir/cogo" migrate >/dev/null
if [ -n "$naptime" ]; then
  psql_q -c "ALTER SYSTEM SET autovacuum_naptime = '${naptime}s'" -c "SELECT pg_reload_conf()" >/dev/null
fi
vac=$repo/bench/vacuum

one_run() { # settings: 007 or default
  if [ "$1" = default ]; then
    psql_q -c "ALTER TABLE agent_messages RESET (autovacuum_vacuum_scale_factor,
                 autovacuum_vacuum_threshold, vacuum_index_cleanup)"
  else
    psql_q -c "ALTER TABLE agent_messages SET (autovacuum_vacuum_scale_factor = 0,
                 autovacuum_vacuum_threshold = 10000, vacuum_index_cleanup = on)"
  fi
  psql_q -v finished="$finished" -v queued=20000 -f "$vac/prefill.sql" >/dev/null
  local before out series vacuums scan dead
  before=$(psql_q -Atc "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'agent_messages'")
  out=$("$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c 4 -j 2 \
          -T "$duration" -P 15 -f "$vac/insert.sql@50" -f "$vac/claim_complete.sql@50" cogo 2>&1) \
    || { echo "$out" >&2; die "pgbench failed"; }
  series=$(sed -n 's/^progress: [0-9.]* s, \([0-9]*\)\.[0-9]* tps.*/\1/p' <<<"$out" | paste -sd ' ')
  printf '%-8s tps per 15 s: %s\n' "$1" "$series"
  vacuums=$(($(psql_q -Atc "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'agent_messages'") - before))
  scan=$(psql_q -f "$vac/probe.sql")
  dead=$(psql_q -Atc "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'agent_messages'")
  printf '%-8s autovacuums: %s; one claim scan: %s; %s dead rows\n' "$1" "$vacuums" \
    "$(sed -n 's/.*Buffers: //p' <<<"$scan" | head -1)" "$dead"
}

log "$rounds round(s) of $duration s, $finished finished messages, naptime ${naptime:-server default}"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then one_run 007; one_run default; else one_run default; one_run 007; fi
done
