#!/usr/bin/env bash
# run-cogo-bench.sh: cogo's bus benchmark in one command. Bootstraps the Debian packages, builds
# Release, starts a throwaway PostgreSQL 15 cluster (default durability: fsync and
# synchronous_commit on) in a scratch directory on a free port, migrates it, runs cogo-bench
# drain, e2e and latency, prints a table, and removes the cluster on exit.
#   bench/run-cogo-bench.sh [cogo-bench options...]   e.g. --runs 5 --json results.json
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}  # Release, apart from the test build
jobs=${COGO_JOBS:-$(nproc)}

log() { printf 'run-cogo-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/bench/lib/common.sh"
bench_build cogo cogo-bench

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-bench-pg.XXXXXX")
trap 'pg_stop "$scratch"; rm -rf "$scratch"' EXIT
port=$(free_port 55433)
pg_start "$scratch" "$port"
export COGO_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/cogo"
log "cluster on port $port ($scratch)"
"$build_dir/cogo" migrate >/dev/null

# A leading mode (drain, e2e, latency, sql, delayed, all) selects what runs; default: all.
case "${1:-}" in
  drain|e2e|latency|sql|delayed|all) "$build_dir/bench/cogo-bench" "$@" ;;
  *) "$build_dir/bench/cogo-bench" all "$@" ;;
esac
