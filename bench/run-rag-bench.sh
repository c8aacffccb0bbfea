#!/usr/bin/env bash
# run-rag-bench.sh: the retrieval benchmark in one command (issue 13). Installs the PostgreSQL 15
# manual (Debian postgresql-doc-15) when missing, extracts one document per HTML page with a
# query each (bench/rag/extract_pgdocs.py), builds Release, starts a throwaway PostgreSQL 15
# cluster on a free port, migrates it, runs cogo-rag-bench, and removes the cluster on exit.
#   bench/run-rag-bench.sh [cogo-rag-bench options...]   e.g. --big 50000 --hnsw-ef 128
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}  # Release, apart from the test build
jobs=${COGO_JOBS:-$(nproc)}
html=/usr/share/doc/postgresql-doc-15/html

log() { printf 'run-rag-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/scripts/lib/pg.sh"

bash "$repo/scripts/bootstrap.sh"
if [ ! -d "$html" ]; then
  log "installing postgresql-doc-15 (the corpus)"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends postgresql-doc-15
fi
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs" --target cogo cogo-rag-bench >/dev/null

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-ragbench-pg.XXXXXX")  # the cluster's (postgres owns it)
corpus=$(mktemp "${TMPDIR:-/tmp}/cogo-ragbench-corpus.XXXXXX")
trap 'pg_stop "$scratch"; rm -rf "$scratch" "$corpus"' EXIT
python3 "$repo/bench/rag/extract_pgdocs.py" "$html" "$corpus"
port=$(free_port 55433)
pg_start "$scratch" "$port"
export COGO_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/cogo"
log "cluster on port $port ($scratch)"
"$build_dir/cogo" migrate >/dev/null

"$build_dir/bench/cogo-rag-bench" --corpus "$corpus" --policy "$repo/config/policy.example.json" "$@"
