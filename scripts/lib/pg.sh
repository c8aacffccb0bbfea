# Private PostgreSQL clusters for development, tests and benchmarks; sourced by scripts/cogo-dev
# and bench/run-cogo-bench.sh. Defines as_pg, pg_start DIR PORT, pg_stop DIR, free_port [FROM].
# Uses $pg_bin (default: PostgreSQL 15's bin directory) and the caller's die(), if it has one.

pg_bin=${pg_bin:-${COGO_PG_BIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v initdb)")}}
declare -F die >/dev/null || die() { printf '%s\n' "$*" >&2; exit 1; }

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
