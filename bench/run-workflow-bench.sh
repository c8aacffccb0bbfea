#!/usr/bin/env bash
# run-workflow-bench.sh: the workflow engine's benchmark in one command (issue 12). Bootstraps the
# Debian packages, builds Release, starts a throwaway PostgreSQL 15 cluster (default durability)
# on a free port with pg_stat_statements preloaded (statement counts per step), migrates it, runs
# cogo-workflow-bench (3-step no-op workflow vs the bare bus, interleaved rounds), and removes the
# cluster on exit.
#   bench/run-workflow-bench.sh [cogo-workflow-bench options...]   e.g. --runs 2000 --rounds 2
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}  # Release, apart from the test build
jobs=${COGO_JOBS:-$(nproc)}

log() { printf 'run-workflow-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/scripts/lib/pg.sh"

bash "$repo/scripts/bootstrap.sh"
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs" --target cogo cogo-workflow-bench >/dev/null

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-wfbench-pg.XXXXXX")
trap 'pg_stop "$scratch"; rm -rf "$scratch"' EXIT
port=$(free_port 55433)
pg_start "$scratch" "$port"
# pg_stat_statements needs a restart to load; track = all also counts the step trigger's
# statements (nested in its plpgsql function).
as_pg tee -a "$scratch/data/postgresql.conf" >/dev/null <<CONF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
CONF
pg_stop "$scratch"
pg_start "$scratch" "$port"
export COGO_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/cogo"
log "cluster on port $port ($scratch)"
"$build_dir/cogo" migrate >/dev/null

"$build_dir/bench/cogo-workflow-bench" "$@"
