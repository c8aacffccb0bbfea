# shellcheck shell=bash
# Private PostgreSQL 15 clusters for development, tests and benchmarks.
# Sourced by scripts/cogo-dev and bench/run-reference.sh. Defines:
#   pg_bin                    the server's bin directory (COGO_PG_BIN overrides)
#   as_pg CMD...              run a command as the cluster's owner
#   pg_start DIR PORT         make (once) and start a cluster with default durability, db "cogo"
#   pg_stop DIR               stop it (fast shutdown)
#   free_port [FIRST]         the first port from FIRST (default 55433) nobody listens on
# The caller may define log and die; plain fallbacks are used otherwise.

pg_bin=${pg_bin:-${COGO_PG_BIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v initdb 2>/dev/null || echo /usr/bin/initdb)")}}

declare -F log >/dev/null || log() { printf '%s\n' "$*" >&2; }
declare -F die >/dev/null || die() { log "$*"; exit 1; }

# PostgreSQL refuses to run as root: as root the cluster belongs to the postgres system user,
# in a directory that user owns; otherwise it runs as the current user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR PORT: make (once) and start a private cluster with default durability.
pg_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
log_min_messages = warning
# pg_stat_activity shows a pipelined transaction's whole message (db/pipelined_transaction.h),
# not its first kilobyte.
track_activity_query_size = 16384
CONF
  fi
  if ! as_pg "$pg_bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null \
      || { tail -20 "$dir/server.log" >&2; die "postgres did not start"; }
  fi
  as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname='cogo'" | grep -q 1 \
    || as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres cogo
}

pg_stop() {
  local dir=$1
  [ -f "$dir/data/PG_VERSION" ] || return 0
  as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

free_port() {
  local p
  for p in $(seq "${1:-55433}" 55600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port"
}
