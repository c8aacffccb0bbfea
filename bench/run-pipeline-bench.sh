#!/usr/bin/env bash
# run-pipeline-bench.sh: the whole request path, edge -> decide -> execute -> chat -> result.
#
# Makes a throwaway cluster (default durability; track_commit_timestamp on, so each message's
# completion commit can be read back), migrates it, starts the README stack's chat path from a
# Release build with the shipped example configuration (cogo-orchestrator-brain,
# cogo-executor-dispatcher, cogo-gateway-chat with the offline deterministic model,
# cogo-bus-reclaimer, cogo-bus-retention, cogo-edge with its per-tenant rate limit off), mints a
# token, warms the stack up (every daemon's connections and statements: 2 s at 100/s, not
# counted), and runs cogo-pipeline-bench against the edge: chat requests at 10, 100 and 500 per
# second, then higher rates until one is not sustained. Prints edge-accept -> result and the
# time of every hop per rate, the CPU time each daemon and each kind of database session used
# while the rates ran (what the host spends on requests; the load generator is not counted), with
# how long their threads waited for a CPU and how often they were scheduled, and writes a JSON
# summary. Everything it started is stopped and the scratch directory removed at
# exit.
#
# Usage: bench/run-pipeline-bench.sh [--rates LIST] [--duration S] [--no-find-max] [--tenants N]
#                                    [--json PATH] [--statements N] [--waits] [--senders N]
#   --rates LIST   requests per second, comma-separated (default 10,100,500)
#   --duration S   seconds per rate (default 10)
#   --no-find-max  only the listed rates
#   --tenants N    spread the requests round-robin over N tenants (default 1: every admission
#                  updates the same tenant's running total, sql/021)
#   --json PATH    JSON summary (default bench/results/pipeline.json)
#   --senders N    keep-alive connections sending (default 16; the edge gets N + 8 HTTP threads,
#                  since an idle keep-alive connection holds one): enough that the senders, each
#                  waiting for its 202 (a durable commit), can offer 1,000/s and more
#   --statements N preload pg_stat_statements (track = all: trigger and function bodies too) and
#                  print, after the last rate, the N statements with the most execution time
#                  (calls, mean ms, rows and WAL bytes per call): where the database's share
#                  of a request goes
#   --waits        sample pg_stat_activity every 10 ms while the rates run and print, per
#                  session (application name), how often it was seen on CPU, waiting on a lock
#                  (Lock:object is the NOTIFY queue's lock, held by a notifying commit until it
#                  is durable), on the WAL, or idle in its client's transaction
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'run-pipeline-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

rates=10,100,500 duration=10 find_max=--find-max tenants=1 json_out=$repo/bench/results/pipeline.json
statements=0 waits=0 senders=16
while (($#)); do
  case $1 in
    --rates) rates=$2; shift ;;
    --duration) duration=$2; shift ;;
    --no-find-max) find_max= ;;
    --tenants) tenants=$2; shift ;;
    --json) json_out=$2; shift ;;
    --statements) statements=$2; shift; [[ $statements =~ ^[0-9]+$ ]] || die "--statements takes a count" ;;
    --waits) waits=1 ;;
    --senders) senders=$2; shift; [[ $senders =~ ^[0-9]+$ ]] || die "--senders takes a count" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $json_out in /*) ;; *) json_out=$PWD/$json_out ;; esac

build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
source "$repo/bench/lib/common.sh"
bash "$repo/scripts/bootstrap.sh"
bench_tools
daemons=(cogo-orchestrator-brain cogo-executor-dispatcher cogo-gateway-chat cogo-bus-reclaimer
         cogo-bus-retention cogo-edge)
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "${COGO_JOBS:-$(nproc)}" --target cogo cogo-pipeline-bench "${daemons[@]}" >/dev/null
bench_cluster
psql_q -c "ALTER SYSTEM SET track_commit_timestamp = on"
if ((statements > 0)); then  # loaded at the restart below
  as_pg tee -a "$scratch/pg/data/postgresql.conf" >/dev/null <<CONF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
CONF
fi
as_pg "$pg_bin/pg_ctl" -D "$scratch/pg/data" -w -m fast restart >/dev/null || die "the cluster did not restart"
export COGO_DATABASE_URL=$url
"$build_dir/cogo" migrate >/dev/null

pids=()
stop_daemons() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop_daemons; pg_stop "$scratch/pg"; rm -rf "$scratch"' EXIT

export COGO_JWT_SECRET COGO_PUBLISHABLE_KEY
COGO_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
COGO_PUBLISHABLE_KEY=pk_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export COGO_POLICY=$repo/config/policy.example.json COGO_ROUTING=$repo/config/routing.example.json
export COGO_WORKFLOWS=$repo/config/workflows COGO_ARTIFACTS_DIR=$scratch/artifacts
export COGO_REPO_ROOTS=$scratch/repos COGO_EDGE_RATE_PER_S=0
mkdir -p "$scratch/logs" "$COGO_ARTIFACTS_DIR" "$COGO_REPO_ROOTS"
brain_port=$(free_port 18781)
edge_port=$(free_port $((brain_port + 1)))
start() { # name args...
  local name=$1; shift
  (cd "$repo" && exec "$build_dir/$name" "$@") >>"$scratch/logs/$name.log" 2>&1 </dev/null &
  pids+=($!)
}
start cogo-orchestrator-brain --port "$brain_port"
start cogo-executor-dispatcher
start cogo-gateway-chat
start cogo-bus-reclaimer
start cogo-bus-retention
start cogo-edge --port "$edge_port" --http-threads $((senders + 8))
for port in "$brain_port" "$edge_port"; do
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && continue 2
    sleep 0.1
  done
  tail -20 "$scratch"/logs/*.log >&2
  die "a daemon is not ready on port $port"
done
log "stack ready: edge on $edge_port, brain on $brain_port (logs in $scratch/logs)"

tenant_names=(bench)
if ((tenants > 1)); then mapfile -t tenant_names < <(seq -f 'bench-%g' 1 "$tenants"); fi
COGO_BENCH_TOKEN=
for tenant in "${tenant_names[@]}"; do
  token=$("$build_dir/cogo" token --role authenticated --tenant "$tenant" --ttl 86400) || die "cannot mint a token"
  COGO_BENCH_TOKEN+=${COGO_BENCH_TOKEN:+,}$token
done
export COGO_BENCH_TOKEN
mkdir -p "$(dirname "$json_out")"
# The first requests meet cold connections (statements prepared, plans and catalog caches made
# on first use): a warm-up run, not counted, so the rates measure the steady state.
"$build_dir/bench/cogo-pipeline-bench" --edge "http://127.0.0.1:$edge_port" --database-url "$url" \
  --tenant bench --tenants "$tenants" --rates 100 --duration 2 --senders "$senders" >/dev/null \
  || die "the warm-up run failed"
# Every daemon and every process of the cluster, one line each: "pid ticks wait_ns slices", its CPU
# ticks (user + system), and over its threads (/proc/<pid>/task/*/schedstat) the time they were
# runnable but waited for a CPU and how many times they got one (about: how often they woke).
# Threads that exit between the two readings are left out.
cpu_ticks() {
  local pid ticks
  for pid in "${pids[@]}" $(ps --ppid "$(head -1 "$scratch/pg/data/postmaster.pid")" -o pid=); do
    ticks=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null) || continue  # gone
    echo "$pid $ticks $(cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{w += $2; s += $3} END {printf "%.0f %.0f", w, s}')"
  done
}
cpu_ticks >"$scratch/cpu.before"
if ((waits)); then  # one psql session reads a query every 10 ms until the sampler is stopped
  sample="SELECT application_name || ' ' || CASE WHEN state = 'idle in transaction' THEN 'Client:InTransaction'
                 ELSE coalesce(wait_event_type || ':' || wait_event, 'CPU') END
          FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> ''
            AND (state = 'active' OR state = 'idle in transaction');"
  (while :; do printf '%s\n' "$sample"; sleep 0.01; done) | "$pg_bin/psql" "$url" -X -q -At >"$scratch/waits" 2>/dev/null &
  sampler=$!
fi
# shellcheck disable=SC2086  # $find_max is one flag or nothing
"$build_dir/bench/cogo-pipeline-bench" --edge "http://127.0.0.1:$edge_port" --database-url "$url" \
  --tenant bench --tenants "$tenants" --rates "$rates" --duration "$duration" $find_max --senders "$senders" \
  --json "$json_out"
log "summary: $json_out"
cpu_ticks >"$scratch/cpu.after"
printf '\nWhile the rates ran: CPU seconds (user + system), seconds runnable but waiting for a CPU, and\ntimes scheduled (about: wake-ups), per process and over all of them:\n'
# Names: each daemon's binary; each backend's session (application name) or its process kind.
{
  for pid in "${pids[@]}"; do printf '%s|%s\n' "$pid" "$(basename "$(readlink "/proc/$pid/exe")")"; done
  "$pg_bin/psql" "$url" -X -q -At -c "SELECT pid, 'postgres: ' || CASE WHEN application_name <> ''
      THEN regexp_replace(application_name, ':.*', '') ELSE backend_type END FROM pg_stat_activity"
} >"$scratch/cpu.names"
awk -v hz="$(getconf CLK_TCK)" '
  FILENAME ~ /names$/ { split($0, x, "|"); name[x[1]] = x[2]; next }
  FILENAME ~ /before$/ { before[$1] = $2; waited_before[$1] = $3; slices_before[$1] = $4; next }
  { who = ($1 in name) ? name[$1] : "postgres: other processes"
    used[who] += $2 - before[$1]; total += $2 - before[$1]
    waited[who] += $3 - waited_before[$1]; total_waited += $3 - waited_before[$1]
    slices[who] += $4 - slices_before[$1]; total_slices += $4 - slices_before[$1] }
  END { for (w in used) if (used[w] > 0) printf "%9.2f s %7.2f s %8d  %s\n", used[w] / hz, waited[w] / 1e9, slices[w], w
        printf "%9.2f s %7.2f s %8d  %s\n", total / hz, total_waited / 1e9, total_slices, "total" }' \
  "$scratch/cpu.names" "$scratch/cpu.before" "$scratch/cpu.after" | sort -rn
if ((waits)); then
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  printf '\nsessions seen busy, by what they waited on (samples every 10 ms over every rate):\n'
  sort "$scratch/waits" | uniq -c | sort -rn | head -25
fi
if ((statements > 0)); then
  "$pg_bin/psql" "$url" -X -q -v ON_ERROR_STOP=1 -P pager=off \
    -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "
    SELECT calls, round(total_exec_time::numeric, 0) AS total_ms,
           round(mean_exec_time::numeric, 3) AS mean_ms, round(rows::numeric / calls, 1) AS rows_per_call,
           round(wal_bytes / calls, 0) AS wal_b_per_call,
           left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS statement
    FROM pg_stat_statements WHERE calls > 0 ORDER BY total_exec_time DESC LIMIT $statements"
fi
