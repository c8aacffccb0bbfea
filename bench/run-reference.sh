#!/usr/bin/env bash
# run-reference.sh: the reference and peer half of the bus benchmark.
#
# Makes a throwaway private PostgreSQL 15 cluster (scratch directory, free port, default
# durability: fsync and synchronous_commit on), then measures on it
#   1. the reference: pgbench custom scripts for the minimal per-message SQL on a minimal queue
#      table (bench/reference/): insert; insert + pg_notify; claim one with SKIP LOCKED and mark
#      it done; insert and claim+complete mixed 50/50;
#   2. the peer: graphile-worker, installed from npm into the scratch directory (never a
#      dependency of cogo): drain and end-to-end, exactly-once checked on every run;
# prints a table and writes a JSON summary. The cluster and the scratch directory are removed
# at exit.
#
# Usage: bench/run-reference.sh [options]
#   --json PATH        JSON summary (default bench/results/reference.json)
#   --duration S       seconds per pgbench run (default 10)
#   --clients N        pgbench clients (default 8); --threads N pgbench threads (default 2)
#   --prefill N        queued rows made before the claim runs (default 300000)
#   --jobs N           peer jobs per run (default 20000); --runs N peer runs (default 3)
#   --concurrency N    peer worker concurrency (default 24)
#   --peer-configs L   graphile-worker configurations (default batched,default)
#   --fsync-test       also run pg_test_fsync -s 2 in the scratch directory
#   --skip-reference, --skip-peers
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-reference: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

json_out=$repo/bench/results/reference.json
duration=10 clients=8 threads=2 prefill=300000
jobs=20000 runs=3 concurrency=24 peer_configs=batched,default
fsync_test=0 do_reference=1 do_peers=1
while (($#)); do
  case $1 in
    --json) json_out=$2; shift ;;
    --duration) duration=$2; shift ;;
    --clients) clients=$2; shift ;;
    --threads) threads=$2; shift ;;
    --prefill) prefill=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --runs) runs=$2; shift ;;
    --concurrency) concurrency=$2; shift ;;
    --peer-configs) peer_configs=$2; shift ;;
    --fsync-test) fsync_test=1 ;;
    --skip-reference) do_reference=0 ;;
    --skip-peers) do_peers=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $json_out in /*) ;; *) json_out=$PWD/$json_out ;; esac

source "$repo/bench/lib/common.sh"
if ((do_peers)); then bench_tools --peers; else bench_tools; fi
bench_cluster
setting() { psql_q -Atc "SHOW $1"; }

pg_version=$(psql_q -Atc "SELECT current_setting('server_version')")
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
declare -A conf
for s in fsync synchronous_commit wal_sync_method full_page_writes shared_buffers max_wal_size; do
  conf[$s]=$(setting "$s")
done

# pg_test_fsync on the cluster's file system (how fast a commit can reach the disk here)
fdatasync_ops=null
if ((fsync_test)); then
  log "pg_test_fsync -s 2"
  as_pg "$pg_bin/pg_test_fsync" -s 2 -f "$scratch/pg/fsync.test" >"$scratch/fsync.txt" 2>&1 || true
  fdatasync_ops=$(awk '/one 8kB write/ {s=1} s && $1=="fdatasync" {print $2; exit}' "$scratch/fsync.txt")
  fdatasync_ops=${fdatasync_ops:-null}
fi

# CPU and I/O pressure ("some": share of wall time some task waited for a CPU / for I/O, from
# /proc/pressure): the machine may be shared, and this says how much of each phase others took.
psi_now() { awk '/^some/ {sub("total=", "", $5); printf "%s ", $5}' /proc/pressure/cpu /proc/pressure/io 2>/dev/null || true; }
now_us() { echo $(($(date +%s%N) / 1000)); }
psi_mark() { psi0=$(psi_now) t0_us=$(now_us); }
psi_pct() { # {"cpu": %, "io": %} since psi_mark, or null when the kernel has no PSI
  local p1; p1=$(psi_now)
  if [ -n "$p1" ] && [ -n "$psi0" ]; then
    awk -v a="$psi0" -v b="$p1" -v t="$(($(now_us) - t0_us))" 'BEGIN {split(a, x, " "); split(b, y, " ");
      printf "{\"cpu\": %.0f, \"io\": %.0f}", 100 * (y[1] - x[1]) / t, 100 * (y[2] - x[2]) / t}'
  else echo null; fi
}
psi_ref=null psi_peer=null

# --- 1. the reference
declare -A left
ref_names=(insert insert_notify claim_complete mixed)
if ((do_reference)); then
  psi_mark
  log "reference: insert";          ref_fresh_table 0;          ref_pgbench insert -f "$ref_dir/insert.sql"
  log "reference: insert + notify"; ref_fresh_table 0;          ref_pgbench insert_notify -f "$ref_dir/insert_notify.sql"
  log "reference: claim+complete";  ref_fresh_table "$prefill"; ref_pgbench claim_complete -f "$ref_dir/claim_complete.sql"
  left[claim_complete]=$(ref_queued_left)
  log "reference: mixed 50/50";     ref_fresh_table "$prefill"
  ref_pgbench mixed -f "$ref_dir/insert.sql@50" -f "$ref_dir/claim_complete.sql@50"
  left[mixed]=$(ref_queued_left)
  for n in claim_complete mixed; do
    ((${left[$n]} > 0)) || die "the queue ran dry during $n: raise --prefill"
  done
  psi_ref=$(psi_pct)
fi

# --- 2. the peer
peer_json=null
peer_status=0
if ((do_peers)); then
  npm_dir=$(peer_install graphile-worker)
  log "peer: graphile-worker ($jobs jobs, $runs runs per mode and configuration)"
  psi_mark
  node "$npm_dir/bench.js" --url "$url" --pgbench "$pg_bin/pgbench" --jobs "$jobs" --runs "$runs" \
    --producers "$clients" --pgbench-threads "$threads" --concurrency "$concurrency" \
    --configs "$peer_configs" >"$scratch/peer.json" || peer_status=$?
  psi_peer=$(psi_pct)
  [ -s "$scratch/peer.json" ] || die "the graphile-worker bench failed"
  peer_json=$(cat "$scratch/peer.json")
fi

# --- report
echo
echo "machine: $(nproc) cores ($cpu_model), $((mem_kb / 1024)) MiB RAM; PostgreSQL $pg_version"
echo "durability: fsync=${conf[fsync]} synchronous_commit=${conf[synchronous_commit]}" \
     "wal_sync_method=${conf[wal_sync_method]} full_page_writes=${conf[full_page_writes]}" \
     "shared_buffers=${conf[shared_buffers]}"
echo "pressure (% of wall time some task waited; null: not measured): reference $psi_ref, peer $psi_peer;" \
     "load average now $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$fdatasync_ops" = null ] || echo "pg_test_fsync: fdatasync, one 8kB write: $fdatasync_ops ops/s"
if ((do_reference)); then
  echo
  echo "reference: pgbench -M prepared -c $clients -j $threads -T $duration"
  printf '  %-16s %10s %12s %12s\n' script TPS messages/s "latency ms"
  for n in "${ref_names[@]}"; do
    printf '  %-16s %10.0f %12s %12s\n' "$n" "${tps[$n]}" "$(ref_messages_per_s "$n")" "${lat[$n]}"
  done
  awk -v a="${tps[insert_notify]}" -v b="${tps[insert]}" \
    'BEGIN {printf "  insert+notify / insert = %.2f\n", a / b}'
fi
if ((do_peers)); then
  echo
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`peer: graphile-worker ${r.version} (node ${r.node}), ${r.jobs} no-op jobs, concurrency ${r.concurrency}, ${r.producers} producers for e2e`);
    console.log(`  ${"mode".padEnd(6)} ${"config".padEnd(8)} ${"median jobs/s".padStart(13)}  runs                      exactly-once`);
    for (const x of r.results)
      console.log(`  ${x.mode.padEnd(6)} ${x.config.padEnd(8)} ${String(x.median_jobs_per_s).padStart(13)}  ${x.runs.map(y => y.jobs_per_s).join(", ").padEnd(25)} ${x.exactly_once ? "ok" : "FAILED"}`);
  ' "$scratch/peer.json"
fi

# --- JSON summary
ref_json=null
if ((do_reference)); then
  ref_json="{"
  sep=""
  for n in "${ref_names[@]}"; do
    ref_json+="$sep\"$n\": {\"tps\": ${tps[$n]}, \"messages_per_s\": $(ref_messages_per_s "$n"), \"latency_ms\": ${lat[$n]:-null}, \"failed\": ${failed[$n]:-null}, \"queued_left\": ${left[$n]:-null}}"
    sep=", "
  done
  ref_json+="}"
fi
mkdir -p "$(dirname "$json_out")"
cat >"$json_out" <<JSON
{
  "generated_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "machine": {"nproc": $(nproc), "cpu": "$cpu_model", "mem_mib": $((mem_kb / 1024)), "kernel": "$(uname -r)",
              "pressure_pct": {"reference": $psi_ref, "peer": $psi_peer}},
  "postgres": {"version": "$pg_version", "fsync": "${conf[fsync]}", "synchronous_commit": "${conf[synchronous_commit]}",
               "wal_sync_method": "${conf[wal_sync_method]}", "full_page_writes": "${conf[full_page_writes]}",
               "shared_buffers": "${conf[shared_buffers]}", "max_wal_size": "${conf[max_wal_size]}",
               "pg_test_fsync_fdatasync_ops_per_s": $fdatasync_ops},
  "reference": {"pgbench": {"clients": $clients, "threads": $threads, "duration_s": $duration, "protocol": "prepared", "prefill": $prefill},
                "results": $ref_json},
  "peer": $peer_json
}
JSON
echo
echo "summary: $json_out"
((peer_status == 0)) || die "the peer bench reported a failed exactly-once check (exit $peer_status)"
