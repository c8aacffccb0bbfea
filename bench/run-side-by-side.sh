#!/usr/bin/env bash
# run-side-by-side.sh: cogo against the reference and the peer, interleaved on one cluster.
#
# The machines are shared: the same configuration moves by up to 2x within minutes. So instead
# of measuring the reference, then the peer, then cogo, each round measures a pair back to back
# (alternating which goes first) on one throwaway cluster (default durability: fsync and
# synchronous_commit on), and the comparison is the median of the per-round ratios:
#   e2e:   pgbench mixed reference (bench/reference: insert; claim+complete, 50/50, 8 clients),
#          then cogo-bench e2e (8 producers, one message per transaction, 20,000 messages);
#   drain: graphile-worker drain (batched configuration, 20,000 jobs, installed from npm into
#          the scratch directory; never a dependency of cogo), then cogo-bench drain;
# and finally cogo's dispatch latency (cogo-bench latency, NOTIFY and poll-only). Every cogo and
# graphile-worker run checks exactly-once. Prints a table and writes a JSON summary.
#
# Usage: bench/run-side-by-side.sh [--rounds N] [--json PATH] [--duration S]
#   --rounds N     pairs of each kind (default 5)
#   --json PATH    JSON summary (default bench/results/side-by-side.json)
#   --duration S   seconds per pgbench run (default 10)
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-side-by-side: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

rounds=5 json_out=$repo/bench/results/side-by-side.json
clients=8 threads=2 duration=10 prefill=300000 messages=20000
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift; ((rounds >= 1)) || die "--rounds must be at least 1" ;;
    --json) json_out=$2; shift ;;
    --duration) duration=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $json_out in /*) ;; *) json_out=$PWD/$json_out ;; esac

build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
source "$repo/bench/lib/common.sh"
bash "$repo/scripts/bootstrap.sh"
bench_tools --peers
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "${COGO_JOBS:-$(nproc)}" --target cogo cogo-bench >/dev/null
bench_cluster
COGO_DATABASE_URL=$url "$build_dir/cogo" migrate >/dev/null
graphile_install

cogo_bench() { # mode, json path
  "$build_dir/bench/cogo-bench" "$1" --database-url "$url" --runs 1 --messages "$messages" \
    --json "$2" >"$scratch/cogo.out" 2>&1 || { cat "$scratch/cogo.out" >&2; die "cogo-bench $1 failed"; }
}
json_get() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

results=$scratch/rounds.tsv
printf 'round\tref_mixed\tcogo_e2e\tgraphile_drain\tcogo_drain\n' >"$results"
reference_mixed() {
  ref_fresh_table "$prefill"
  ref_pgbench mixed -f "$ref_dir/insert.sql@50" -f "$ref_dir/claim_complete.sql@50"
  (($(ref_queued_left) > 0)) || die "the reference queue ran dry: raise the prefill"
  psql_q -c "DROP TABLE ref_queue"
  ref=$(ref_messages_per_s mixed)
}
cogo_e2e() {
  cogo_bench e2e "$scratch/e2e.json"
  e2e=$(json_get "$scratch/e2e.json" 'round(d["e2e"]["median_msg_per_s"])')
}
graphile_drain() {
  node "$npm_dir/bench.js" --url "$url" --pgbench "$pg_bin/pgbench" --jobs "$messages" --runs 1 \
    --producers "$clients" --pgbench-threads "$threads" --configs batched --modes drain \
    >"$scratch/peer.json" || die "the graphile-worker bench failed (exactly-once or error)"
  peer=$(json_get "$scratch/peer.json" 'round(d["results"][0]["median_jobs_per_s"])')
}
cogo_drain() {
  cogo_bench drain "$scratch/drain.json"
  drain=$(json_get "$scratch/drain.json" 'round(d["drain"]["median_msg_per_s"])')
}
for ((r = 1; r <= rounds; r++)); do
  # Odd rounds measure the comparison first, even rounds cogo first: neither side always runs
  # on the state (checkpoint, caches) the other left.
  if ((r % 2)); then reference_mixed; cogo_e2e; graphile_drain; cogo_drain
  else cogo_e2e; reference_mixed; cogo_drain; graphile_drain; fi
  printf '%d\t%s\t%s\t%s\t%s\n' "$r" "$ref" "$e2e" "$peer" "$drain" >>"$results"
  log "round $r: reference mixed $ref, cogo e2e $e2e msg/s; graphile-worker drain $peer, cogo drain $drain msg/s"
done
cogo_bench latency "$scratch/latency.json"

mkdir -p "$(dirname "$json_out")"
python3 - "$results" "$scratch/latency.json" "$json_out" "$rounds" "$duration" <<'PY'
import json, statistics, subprocess, sys
rows_path, latency_path, out_path, rounds, duration = sys.argv[1:6]
rows = [line.rstrip("\n").split("\t") for line in open(rows_path)][1:]
rounds_out = []
for r in rows:
    n, ref, e2e, peer, drain = int(r[0]), *map(float, r[1:])
    rounds_out.append({"round": n, "reference_mixed_msg_per_s": ref, "cogo_e2e_msg_per_s": e2e,
                       "e2e_fraction_of_reference": e2e / ref, "graphile_drain_jobs_per_s": peer,
                       "cogo_drain_msg_per_s": drain, "drain_multiple_of_graphile": drain / peer})
med = lambda key: statistics.median(x[key] for x in rounds_out)
lat = json.load(open(latency_path))["latency"]
print("\nround  reference mixed  cogo e2e  fraction   graphile drain  cogo drain  multiple")
for x in rounds_out:
    print(f"{x['round']:>5}  {x['reference_mixed_msg_per_s']:>15.0f}  {x['cogo_e2e_msg_per_s']:>8.0f}"
          f"  {x['e2e_fraction_of_reference']:>8.2f}   {x['graphile_drain_jobs_per_s']:>14.0f}"
          f"  {x['cogo_drain_msg_per_s']:>10.0f}  {x['drain_multiple_of_graphile']:>8.2f}")
print(f"median {med('reference_mixed_msg_per_s'):>15.0f}  {med('cogo_e2e_msg_per_s'):>8.0f}"
      f"  {med('e2e_fraction_of_reference'):>8.2f}   {med('graphile_drain_jobs_per_s'):>14.0f}"
      f"  {med('cogo_drain_msg_per_s'):>10.0f}  {med('drain_multiple_of_graphile'):>8.2f}")
for mode in ("notify", "poll"):
    l = lat[mode]
    print(f"latency {mode:<6}: p50 {l['p50_ms']:.2f} / p90 {l['p90_ms']:.2f} / p99 {l['p99_ms']:.2f}"
          f" / max {l['max_ms']:.2f} ms (poll {l['poll_ms']} ms)")
summary = {"rounds": rounds_out,
           "median": {"e2e_fraction_of_reference": med("e2e_fraction_of_reference"),
                      "drain_multiple_of_graphile": med("drain_multiple_of_graphile")},
           "latency": {m: {k: lat[m][k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "poll_ms")}
                       for m in ("notify", "poll")},
           "reference": {"pgbench": "mixed 50/50, -M prepared -c 8 -j 2", "duration_s": int(duration)},
           "peer": "graphile-worker 0.18 drain, batched configuration"}
with open(out_path, "w") as f:
    json.dump(summary, f, indent=2)
print(f"\nsummary: {out_path}")
PY
