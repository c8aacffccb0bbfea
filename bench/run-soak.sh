#!/usr/bin/env bash
# run-soak.sh: does the bus stay steady? A constant message rate for a long time (default
# 1,000 msg/s for an hour) with the ops daemons running and default autovacuum (plus sql/007's
# per-table settings, which `cogo migrate` applies), sampled every --sample seconds.
#
# On a throwaway cluster (default durability, pg_stat_statements preloaded to time the claim
# statement) with `cogo migrate` applied, it starts the real cogo-bus-retention and
# cogo-bus-reclaimer daemons, then `cogo-bench steady`: 2 in-process workers (concurrency 4,
# NOTIFY wake-ups) and --producers connections publishing one message per transaction on a fixed
# schedule. Retention keeps finished messages and events for --keep (operator configuration:
# the default 7 days / 30 days would need a week to show that the tables stop growing) and runs
# every --retention-interval. Each sample: published and completed msg/s, dispatch latency p50/p99
# (publish commit -> handler start), claims/s with the mean execution time, buffers and rows of
# one claim, the size of agent_messages, its indexes and bus_events, dead rows, autovacuums and
# the load average. At the end: the first and last --window compared as last / first ratios,
# what retention pruned, and a plot of the CSV (gnuplot, from Debian).
#
# Usage: bench/run-soak.sh [--duration S] [--rate N] [--sample S] [--window S] [--keep DURATION]
#                          [--retention-interval DURATION] [--producers N] [--out DIR] [--replot]
#   --duration S      seconds of publishing (default 3600)
#   --rate N          messages per second (default 1000)
#   --sample S        seconds per sample (default 30)
#   --window S        seconds at the start and at the end compared (default 600)
#   --keep D          retention's --finished-max-age and --events-max-age (default 5m)
#   --retention-interval D  time between retention passes (default 1m)
#   --producers N     publishing connections (default 16: one message per transaction each;
#                     slots a starved publisher misses are dropped and show as published/s)
#   --out DIR         where soak.csv, soak.json, soak.svg and the daemons' logs go
#                     (default bench/results/soak)
#   --replot          only redraw DIR/soak.svg from DIR/soak.csv (give the run's --rate,
#                     --duration and --keep for the title)
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-soak: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

duration=3600 rate=1000 sample=30 window=600 keep=5m retention_interval=1m producers=16
out=$repo/bench/results/soak replot=0
while (($#)); do
  case $1 in
    --duration) duration=$2; shift ;;
    --rate) rate=$2; shift ;;
    --sample) sample=$2; shift ;;
    --window) window=$2; shift ;;
    --keep) keep=$2; shift ;;
    --retention-interval) retention_interval=$2; shift ;;
    --producers) producers=$2; shift ;;
    --out) out=$2; shift ;;
    --replot) replot=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

plot_csv() { # Four panels over time: throughput, dispatch latency, claim cost, sizes and load.
  gnuplot <<PLOT
set terminal svg size 1100,1100 dynamic font "sans,11"
set output "$out/soak.svg"
set termoption noenhanced
set datafile separator ","
set key outside right top vertical
set xlabel "minutes"
set grid
set xrange [0:*]
set yrange [0:*]
set multiplot layout 4,1 title "$1"
set ylabel "msg/s"
plot "$out/soak.csv" using (\$1/60):3 with lines lw 2 title "completed/s", \
     "" using (\$1/60):2 with lines dt 2 title "published/s"
set ylabel "ms"
plot "$out/soak.csv" using (\$1/60):5 with lines lw 2 title "dispatch p99", \
     "" using (\$1/60):4 with lines title "dispatch p50"
set ylabel "per claim"
set y2label "ms"
set y2tics
set y2range [0:*]
plot "$out/soak.csv" using (\$1/60):9 with lines lw 2 title "buffers", \
     "" using (\$1/60):8 axes x1y2 with lines title "mean ms (right)"
set ylabel "MB"
set y2label "load average"
plot "$out/soak.csv" using (\$1/60):11 with lines lw 2 title "agent_messages (total)", \
     "" using (\$1/60):12 with lines title "its indexes", \
     "" using (\$1/60):14 with lines title "bus_events", \
     "" using (\$1/60):20 axes x1y2 with lines dt 3 title "load (right)"
unset multiplot
PLOT
}
title="cogo bus at $rate msg/s for $duration s: retention keeps $keep, reclaimer and autovacuum on"

build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
jobs=${COGO_JOBS:-$(nproc)}
source "$repo/bench/lib/common.sh"
bench_tools
command -v gnuplot >/dev/null || apt_install gnuplot-nox
if ((replot)); then plot_csv "$title"; log "wrote $out/soak.svg"; exit 0; fi
bench_build cogo cogo-bench cogo-bus-retention cogo-bus-reclaimer
mkdir -p "$out"
out=$(cd "$out" && pwd)

bench_cluster
daemons=()
stop_daemons() {
  local pid
  for pid in "${daemons[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${daemons[@]}"; do wait "$pid" 2>/dev/null || true; done
  daemons=()
}
trap 'stop_daemons; pg_stop "$scratch/pg"; rm -rf "$scratch"' EXIT
# pg_stat_statements needs a restart to load.
as_pg tee -a "$scratch/pg/data/postgresql.conf" >/dev/null <<<"shared_preload_libraries = 'pg_stat_statements'"
pg_stop "$scratch/pg"
pg_start "$scratch/pg" "$port"
export COGO_DATABASE_URL=$url
"$build_dir/cogo" migrate >/dev/null

"$build_dir/cogo-bus-retention" --finished-max-age "$keep" --events-max-age "$keep" \
  --interval "$retention_interval" >"$out/retention.log" 2>&1 &
daemons+=($!)
"$build_dir/cogo-bus-reclaimer" >"$out/reclaimer.log" 2>&1 &
daemons+=($!)
sleep 1
for pid in "${daemons[@]}"; do kill -0 "$pid" 2>/dev/null || die "a daemon did not start (see $out/*.log)"; done
log "retention keeps $keep (a pass every $retention_interval), reclaimer on defaults; $rate msg/s for $duration s"

"$build_dir/bench/cogo-bench" steady --rate "$rate" --duration "$duration" --sample "$sample" \
  --window "$window" --producers "$producers" --timeout 600 --csv "$out/soak.csv" --json "$out/soak.json"
for pid in "${daemons[@]}"; do kill -0 "$pid" 2>/dev/null || die "a daemon exited during the run (see $out/*.log)"; done
stop_daemons
awk '/pruned: finished/ {gsub(",", ""); passes++; m += $(NF-6); e += $(NF-2)}
     END {printf "retention: %d passes pruned %d messages and %d events\n", passes, m, e}' "$out/retention.log"

plot_csv "$title"
log "wrote $out/soak.csv, $out/soak.json, $out/soak.svg"
