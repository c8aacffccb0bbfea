# shellcheck shell=bash
# What bench/run-reference.sh and bench/run-side-by-side.sh share. Source after defining
# `repo`, `log` and `die`. Defines:
#   bench_tools [--peers]        pgbench (postgresql-15), and node + npm with --peers, from Debian
#                                packages when missing
#   bench_build TARGET...        scripts/bootstrap.sh, then a Release build of the targets in
#                                $build_dir with $jobs jobs
#   bench_binaries TARGET...     $bin_dir when a script's --bin-dir gave one (built binaries used as
#                                they are), else bench_build and bin_dir=$build_dir
#   bench_cluster                a throwaway cluster (scratch dir, free port, default durability):
#                                sets scratch, port, url; removed at exit
#   psql_q ARGS...               psql on it, quiet, stopping at the first error
#   ref_fresh_table ROWS         the reference queue (bench/reference/setup.sql), pre-filled
#   ref_pgbench NAME ARGS...     pgbench -M prepared with $clients, $threads, $duration; sets
#                                tps[NAME], lat[NAME], failed[NAME]
#   ref_queued_left              queued rows left in the reference queue
#   ref_messages_per_s NAME      messages/s of a pgbench run (a mixed transaction is half a
#                                message: one insert, or one claim + complete)
#   peer_install NAME            a peer (bench/peers/NAME: graphile-worker, pg-boss) from npm into
#                                $scratch/NAME (never a dependency of cogo); prints its directory

source "$repo/scripts/lib/pg.sh"
ref_dir=$repo/bench/reference
declare -A tps lat failed

apt_install() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

bench_tools() {
  if [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pgbench" ]; then
    apt_install postgresql-15 postgresql-contrib
    pg_bin=$(ls -d /usr/lib/postgresql/15/bin)
  fi
  [ -x "$pg_bin/pgbench" ] || die "pgbench not found in $pg_bin"
  if [ "${1:-}" = --peers ] && ! { command -v node && command -v npm; } >/dev/null; then
    apt_install nodejs npm
  fi
}

bench_build() {
  bash "$repo/scripts/bootstrap.sh"
  cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build_dir" -j "$jobs" --target "$@" >/dev/null
}

bench_binaries() {
  if [ -z "${bin_dir:-}" ]; then
    bench_build "$@"
    bin_dir=$build_dir
  fi
}

bench_cluster() {
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-bench.XXXXXX")
  chmod 755 "$scratch"
  trap 'pg_stop "$scratch/pg"; rm -rf "$scratch"' EXIT
  trap 'exit 130' INT TERM
  port=$(free_port 55433)
  pg_start "$scratch/pg" "$port"
  url="postgresql://postgres@127.0.0.1:$port/cogo"
  log "cluster on port $port ($scratch)"
}

psql_q() { "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d cogo -X -q -v ON_ERROR_STOP=1 "$@"; }

ref_fresh_table() {
  psql_q -f "$ref_dir/setup.sql"
  if (($1 > 0)); then psql_q -v rows="$1" -f "$ref_dir/prefill.sql"; else psql_q -c "CHECKPOINT"; fi
}

ref_pgbench() {
  local name=$1; shift
  local out
  out=$("$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared \
          -c "$clients" -j "$threads" -T "$duration" "$@" cogo 2>"$scratch/pgbench.err") \
    || { cat "$scratch/pgbench.err" >&2; die "pgbench $name failed"; }
  tps[$name]=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
  lat[$name]=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  failed[$name]=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  [ -n "${tps[$name]}" ] || { echo "$out" >&2; die "no tps in pgbench output for $name"; }
}

ref_messages_per_s() {
  if [ "$1" = mixed ]; then awk -v t="${tps[$1]}" 'BEGIN {printf "%.0f", t / 2}'
  else awk -v t="${tps[$1]}" 'BEGIN {printf "%.0f", t}'; fi
}

ref_queued_left() { psql_q -Atc "SELECT count(*) FROM ref_queue WHERE status = 'queued'"; }

peer_install() {
  local dir=$scratch/$1
  mkdir -p "$dir"
  cp "$repo/bench/peers/$1/"* "$dir/"
  log "installing $1 into the scratch directory"
  (cd "$dir" && npm install --no-audit --no-fund --omit=dev --no-package-lock --loglevel=error >/dev/null) \
    || die "npm install of $1 failed"
  echo "$dir"
}
