#!/usr/bin/env bash
# run-side-by-side.sh: cogo against the reference and its peers, interleaved on one cluster.
#
# The machines are shared: the same configuration moves by up to 2x within minutes. So instead
# of measuring each system once, every round measures all of them back to back (cogo first in
# even rounds, last in odd ones) on one throwaway cluster (default durability: fsync and
# synchronous_commit on), and each comparison is the median of the per-round ratios:
#   e2e:   pgbench mixed reference (bench/reference: insert; claim+complete, 50/50, 8 clients);
#          8 producers, one message per transaction, 20,000 messages, for cogo-bench e2e,
#          graphile-worker (pgbench producers through its add_job SQL API), pg-boss polling and
#          pg-boss with notify (producer processes calling boss.send);
#   drain: 20,000 messages made first, then drained: cogo-bench drain, graphile-worker (batched
#          configuration), pg-boss polling, pg-boss with notify; timed from the workers' start,
#          and also split at the first handler call (start-up: connections, first fetch; then the
#          rate from that call on);
# and finally dispatch latency (100 msg/s for 10 s to idle workers, commit -> handler start) of
# cogo (NOTIFY and poll-only), graphile-worker and both pg-boss configurations. The peers are
# installed from npm into the scratch directory (never dependencies of cogo). Every run checks
# exactly-once. Prints a table and writes a JSON summary.
#
# Usage: bench/run-side-by-side.sh [--rounds N] [--json PATH] [--duration S] [--messages N]
#   --rounds N     rounds (default 5)
#   --json PATH    JSON summary (default bench/results/side-by-side.json)
#   --duration S   seconds per pgbench run (default 10)
#   --messages N   messages per drain and e2e run, divisible by 8 (default 20000)
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
    --messages) messages=$2; shift; ((messages > 0 && messages % 8 == 0)) || die "--messages must divide by 8" ;;
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
graphile_dir=$(peer_install graphile-worker)
boss_dir=$(peer_install pg-boss)

cogo_bench() { # mode, json path
  "$build_dir/bench/cogo-bench" "$1" --database-url "$url" --runs 1 --messages "$messages" \
    --json "$2" >"$scratch/cogo.out" 2>&1 || { cat "$scratch/cogo.out" >&2; die "cogo-bench $1 failed"; }
}
json_get() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }
graphile_bench() { # mode, json path, extra options...
  local mode=$1 out=$2; shift 2
  node "$graphile_dir/bench.js" --url "$url" --pgbench "$pg_bin/pgbench" --jobs "$messages" --runs 1 \
    --producers "$clients" --pgbench-threads "$threads" --configs batched --modes "$mode" "$@" \
    >"$out" || die "the graphile-worker bench failed (exactly-once or error)"
}
boss_bench() { # config, mode, json path, extra options...
  local config=$1 mode=$2 out=$3; shift 3
  node "$boss_dir/bench.js" --url "$url" --jobs "$messages" --runs 1 --producers "$clients" \
    --configs "$config" --modes "$mode" "$@" >"$out" || die "the pg-boss bench failed (exactly-once or error)"
}

# One measurement: system (cogo, graphile, boss_poll, boss_notify) and mode (e2e, drain) into
# val[system.mode], msg/s; a drain also into val[system.drain_first] (seconds from the workers'
# start to the first handler call) and val[system.drain_after] (msg/s from that call on).
declare -A val
measure() {
  local system=$1 mode=$2 out=$scratch/$1.$2.json
  case $system in
    cogo) cogo_bench "$mode" "$out"; val[$system.$mode]=$(json_get "$out" "round(d['$mode']['median_msg_per_s'])")
      [ "$mode" = drain ] && val[$system.drain_first]=$(json_get "$out" "d['drain']['median_first_call_seconds']") \
        && val[$system.drain_after]=$(json_get "$out" "round(d['drain']['median_after_first_call_msg_per_s'])") ;;
    graphile) graphile_bench "$mode" "$out" ;;
    boss_*) boss_bench "${system#boss_}" "$mode" "$out" ;;
  esac
  if [ "$system" != cogo ]; then
    val[$system.$mode]=$(json_get "$out" 'd["results"][0]["median_jobs_per_s"]')
    [ "$mode" = drain ] && val[$system.drain_first]=$(json_get "$out" 'd["results"][0]["median_first_call_s"]') \
      && val[$system.drain_after]=$(json_get "$out" 'd["results"][0]["median_after_first_call_jobs_per_s"]')
  fi
  log "round $r: $system $mode ${val[$system.$mode]} msg/s"
}
reference_mixed() {
  ref_fresh_table "$prefill"
  ref_pgbench mixed -f "$ref_dir/insert.sql@50" -f "$ref_dir/claim_complete.sql@50"
  (($(ref_queued_left) > 0)) || die "the reference queue ran dry: raise the prefill"
  psql_q -c "DROP TABLE ref_queue"
  val[reference.e2e]=$(ref_messages_per_s mixed)
  log "round $r: reference mixed ${val[reference.e2e]} msg/s"
}

systems=(cogo graphile boss_poll boss_notify)
results=$scratch/rounds.tsv
{
  printf 'round\treference\tcogo_e2e\tgraphile_e2e\tboss_poll_e2e\tboss_notify_e2e\tcogo_drain\tgraphile_drain\tboss_poll_drain\tboss_notify_drain'
  for s in "${systems[@]}"; do printf '\t%s_drain_first_call_s\t%s_drain_after_first_call' "$s" "$s"; done
  printf '\n'
} >"$results"
for ((r = 1; r <= rounds; r++)); do
  # Odd rounds measure the others first, even rounds cogo first: no system always runs on the
  # state (checkpoint, caches, autovacuum) another left.
  if ((r % 2)); then order=(graphile boss_poll boss_notify cogo); else order=(cogo boss_notify boss_poll graphile); fi
  ((r % 2)) && reference_mixed
  for s in "${order[@]}"; do measure "$s" e2e; done
  ((r % 2)) || reference_mixed
  for s in "${order[@]}"; do measure "$s" drain; done
  row=$r
  for s in reference "${systems[@]}"; do row+=$'\t'${val[$s.e2e]}; done
  for s in "${systems[@]}"; do row+=$'\t'${val[$s.drain]}; done
  for s in "${systems[@]}"; do row+=$'\t'${val[$s.drain_first]}$'\t'${val[$s.drain_after]}; done
  printf '%s\n' "$row" >>"$results"
done

log "latency: cogo (NOTIFY and poll-only), graphile-worker, pg-boss polling, pg-boss notify"
cogo_bench latency "$scratch/latency.json"
graphile_bench latency "$scratch/graphile.latency.json"
boss_bench poll latency "$scratch/boss_poll.latency.json"
boss_bench notify latency "$scratch/boss_notify.latency.json"

mkdir -p "$(dirname "$json_out")"
python3 - "$scratch" "$json_out" "$rounds" "$duration" "$messages" <<'PY'
import json, os, statistics, sys
scratch, out_path, rounds, duration, messages = sys.argv[1:6]
rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(scratch, "rounds.tsv"))]
head, rows = rows[0], rows[1:]
systems = ["cogo", "graphile", "boss_poll", "boss_notify"]
names = {"cogo": "cogo", "graphile": "graphile-worker", "boss_poll": "pg-boss poll",
         "boss_notify": "pg-boss notify", "reference": "pgbench mixed"}
rounds_out = []
for r in rows:
    x = {"round": int(r[0])}
    x.update({k: float(v) for k, v in zip(head[1:], r[1:])})
    peers_e2e = max(x[f"{s}_e2e"] for s in systems[1:])
    peers_drain = max(x[f"{s}_drain"] for s in systems[1:])
    x["e2e_multiple_of_best_peer"] = x["cogo_e2e"] / peers_e2e
    x["e2e_fraction_of_reference"] = x["cogo_e2e"] / x["reference"]
    x["drain_multiple_of_graphile"] = x["cogo_drain"] / x["graphile_drain"]
    x["drain_multiple_of_best_peer"] = x["cogo_drain"] / peers_drain
    x["drain_after_first_call_multiple_of_graphile"] = (x["cogo_drain_after_first_call"]
                                                        / x["graphile_drain_after_first_call"])
    rounds_out.append(x)
med = lambda key: statistics.median(x[key] for x in rounds_out)

def latency(system):
    if system == "cogo":
        lat = json.load(open(os.path.join(scratch, "latency.json")))["latency"]
        return {m: {k: lat[m][k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")} for m in ("notify", "poll")}
    r = json.load(open(os.path.join(scratch, f"{system}.latency.json")))["results"][0]["runs"][0]
    return {k: r[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
lat = {s: latency(s) for s in systems}

print("\nmsg/s per round (e2e: 8 producers, one message per transaction; drain: made first)")
print("round  " + "  ".join(f"{names[s] + ' e2e':>18}" for s in ["reference"] + systems))
for x in rounds_out:
    print(f"{x['round']:>5}  " + "  ".join(f"{x[k]:>18.0f}" for k in head[1:6]))
print("round  " + "  ".join(f"{names[s] + ' drain':>18}" for s in systems))
for x in rounds_out:
    print(f"{x['round']:>5}  " + "  ".join(f"{x[k]:>18.0f}" for k in head[6:10]))
print("the drain split at the first handler call: seconds to it (connections, first fetch), msg/s from it")
print("round  " + "  ".join(f"{names[s]:>24}" for s in systems))
for x in rounds_out:
    print(f"{x['round']:>5}  " + "  ".join(
        f"{x[s + '_drain_first_call_s']:>9.3f} s {x[s + '_drain_after_first_call']:>8.0f}/s" for s in systems))
print("\nmedians of the per-round values and ratios:")
ratios = ("e2e_multiple_of_best_peer", "e2e_fraction_of_reference", "drain_multiple_of_graphile",
          "drain_multiple_of_best_peer", "drain_after_first_call_multiple_of_graphile")
for k in head[1:]:
    unit = "s" if k.endswith("_first_call_s") else "msg/s"
    print(f"  {k:<44} {med(k):>10.{3 if unit == 's' else 0}f} {unit}")
for k in ratios:
    print(f"  {k:<44} {med(k):>10.2f}")
print("\nlatency, commit -> handler start, 100 msg/s for 10 s (ms):")
rows_lat = [("cogo notify", lat["cogo"]["notify"]), ("cogo poll-only", lat["cogo"]["poll"])]
rows_lat += [(names[s], lat[s]) for s in systems[1:]]
for name, l in rows_lat:
    print(f"  {name:<16} p50 {l['p50_ms']:>8.2f}  p90 {l['p90_ms']:>8.2f}  p99 {l['p99_ms']:>8.2f}  max {l['max_ms']:>8.2f}")
summary = {"rounds": rounds_out,
           "median": {k: med(k) for k in head[1:] + list(ratios)},
           "latency": lat, "messages": int(messages),
           "reference": {"pgbench": "mixed 50/50, -M prepared -c 8 -j 2", "duration_s": int(duration)},
           "peers": {"graphile": "graphile-worker 0.18 batched configuration",
                     "boss_poll": "pg-boss 12.38 polling (0.5 s, burst while batches come back full)",
                     "boss_notify": "pg-boss 12.38 with useListenNotify and a notify queue"},
           "loadavg": os.getloadavg()}
with open(out_path, "w") as f:
    json.dump(summary, f, indent=2)
print(f"\nsummary: {out_path}")
PY
