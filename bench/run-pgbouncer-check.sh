#!/usr/bin/env bash
# run-pgbouncer-check.sh: what cogo gets through PgBouncer (docs/scaling.md, "PgBouncer").
# A throwaway cluster behind one PgBouncer (Debian package pgbouncer) that pools the same
# database twice: `cogo_session` (pool_mode=session) and `cogo_tx` (pool_mode=transaction).
#   1. LISTEN: a psql LISTENs through each pool, a NOTIFY is sent straight to the database, and
#      the psql runs one more statement: does the notification arrive?
#   2. The bus: `cogo-bench latency` (commit -> handler start, with wake-ups and poll-only)
#      directly, through the session pool and through the transaction pool.
#   bench/run-pgbouncer-check.sh [--rate 50] [--duration 4] [--poll-ms 500] [--bin-dir DIR]
# --bin-dir takes built `cogo` and `bench/cogo-bench` from DIR instead of building them.
# Environment: COGO_BENCH_BUILD_DIR (default build-release), COGO_JOBS (default nproc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
jobs=${COGO_JOBS:-$(nproc)}
rate=50
duration=4
poll_ms=500
bin_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --poll-ms) poll_ms=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    *) echo "run-pgbouncer-check: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf 'run-pgbouncer-check: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/bench/lib/common.sh"
command -v pgbouncer >/dev/null || apt_install pgbouncer
bench_binaries cogo cogo-bench
bench_cluster
COGO_DATABASE_URL=$url "$bin_dir/cogo" migrate >/dev/null

# PgBouncer refuses to run as root: it runs as the cluster's owner, from the scratch directory.
bouncer_port=$(free_port $((port + 1)))
bouncer=$scratch/pgbouncer
mkdir "$bouncer"
cat >"$bouncer/pgbouncer.ini" <<EOF
[databases]
cogo_session = host=127.0.0.1 port=$port dbname=cogo pool_mode=session
cogo_tx = host=127.0.0.1 port=$port dbname=cogo pool_mode=transaction
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $bouncer/userlist.txt
max_client_conn = 200
default_pool_size = 20
logfile = $bouncer/pgbouncer.log
pidfile = $bouncer/pgbouncer.pid
EOF
echo '"postgres" ""' >"$bouncer/userlist.txt"
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres "$bouncer"
  runuser -u postgres -- pgbouncer -d "$bouncer/pgbouncer.ini"
else
  pgbouncer -d "$bouncer/pgbouncer.ini"
fi
trap 'kill "$(cat "$bouncer/pgbouncer.pid" 2>/dev/null)" 2>/dev/null; pg_stop "$scratch/pg"; rm -rf "$scratch"' EXIT
for _ in $(seq 50); do "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$bouncer_port" -d cogo_session && break; sleep 0.1; done
"$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$bouncer_port" -d cogo_session || die "pgbouncer did not start: $(cat "$bouncer/pgbouncer.log" 2>/dev/null)"
log "pgbouncer $(pgbouncer --version | head -1 | cut -d' ' -f2) on port $bouncer_port"

# 1. LISTEN through a pool, NOTIFY straight to the database, then one more statement.
listen_through() {
  local database=$1 channel=cogo_probe_$1
  {
    echo "LISTEN $channel;"
    echo "\\! $pg_bin/psql -h 127.0.0.1 -p $port -U postgres -d cogo -X -q -c \"NOTIFY $channel, 'wake'\""
    echo "SELECT pg_sleep(0.2);"
    echo "SELECT 1;"
  } | "$pg_bin/psql" -h 127.0.0.1 -p "$bouncer_port" -U postgres -d "$database" -X -q -At 2>&1 |
    grep -c "Asynchronous notification \"$channel\"" || true
}
printf '\n%-28s %s\n' "LISTEN through" "notifications received (of 1)"
printf '%-28s %s\n' "session pool" "$(listen_through cogo_session)"
printf '%-28s %s\n' "transaction pool" "$(listen_through cogo_tx)"

# 2. The bus through each.
printf '\n%-18s %-8s %10s %10s %10s  %s\n' connection mode "p50 ms" "p99 ms" "max ms" "result"
bus_through() {
  local label=$1 bench_url=$2 out=$scratch/latency-$1.json
  if "$bin_dir/bench/cogo-bench" latency --database-url "$bench_url" --rate "$rate" --duration "$duration" \
      --poll-ms "$poll_ms" --timeout 60 --json "$out" >"$scratch/latency-$label.log" 2>&1; then
    python3 - "$out" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["latency"]
for mode in ("notify", "poll"):
    m = r[mode]
    print(f"{sys.argv[2]:<18} {mode:<8} {m['p50_ms']:>10.2f} {m['p99_ms']:>10.2f} {m['max_ms']:>10.2f}  "
          f"{m['messages']} msgs exactly once, {m['notifications']} wake-ups")
PY
  else
    printf '%-18s %-8s %10s %10s %10s  FAILED: %s\n' "$label" - - - - \
      "$(grep -o 'FAILED: .*' "$scratch/latency-$label.log" | head -1 | cut -c9-160)"
  fi
}
bus_through direct "$url"
bus_through session-pool "postgresql://postgres@127.0.0.1:$bouncer_port/cogo_session"
bus_through transaction-pool "postgresql://postgres@127.0.0.1:$bouncer_port/cogo_tx"
printf '\n(rate %s/s for %s s, poll %s ms; PostgreSQL %s, %s cores)\n' "$rate" "$duration" "$poll_ms" \
  "$(psql_q -Atc 'SHOW server_version')" "$(nproc)"
