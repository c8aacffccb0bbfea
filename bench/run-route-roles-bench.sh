#!/usr/bin/env bash
# run-route-roles-bench.sh: what the per-route worker roles (sql/023_route_roles.sql) cost the
# bus's claim and complete. pgbench runs the real statements (kClaim and kComplete, read from
# src/bus/statements.h: claim 32 of route bench/noop, then complete them) from 2 clients on a
# throwaway cluster, logged in as
#   owner   the superuser: no row-level security at all;
#   open    a login whose only agent_messages policy is USING (true) (cogo_ops; every worker
#           role was so before 023);
#   route   a login of a route role for bench/noop (023's restrictive own-routes policy on
#           every claim and complete),
# in interleaved rounds, each from the same 100,000 queued messages, and prints the median
# messages/s of each and the median of its per-round ratio to `owner`.
#   bench/run-route-roles-bench.sh [--rounds 7] [--seconds 8]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${COGO_BENCH_BUILD_DIR:-$repo/build-release}
jobs=${COGO_JOBS:-$(nproc)}
rounds=7
seconds=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "run-route-roles-bench: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf 'run-route-roles-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$repo/bench/lib/common.sh"
bench_build cogo
bench_cluster
COGO_DATABASE_URL=$url "$build_dir/cogo" migrate >/dev/null
# The bench route gets a route role, as an operator adds one for a daemon of their own.
psql_q <<'SQL'
CREATE ROLE cogo_bench NOLOGIN IN ROLE cogo_worker;
INSERT INTO cogo_db_roles (kind, name, routes, login, purpose)
VALUES ('bench', 'cogo_bench', '{bench/noop}', true, 'run-route-roles-bench.sh');
CREATE ROLE cogo_bench_login LOGIN IN ROLE cogo_bench;
CREATE ROLE cogo_open_login LOGIN IN ROLE cogo_ops;
SQL

# The pgbench script: the claim as the worker's claimer sends it, the leases it took, the complete.
python3 - "$repo/src/bus/statements.h" >"$scratch/claim.sql" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def statement(name):
    return re.search(rf'{name} = R"SQL\((.*?)\)SQL"', text, re.S).group(1).strip()
claim = statement("kClaim")
for n, value in ((6, "30000"), (5, "('b' || :client_id)"), (4, "32"), (3, "'{0}'"), (2, "'noop'"), (1, "'bench'")):
    claim = claim.replace(f"${n}", value)
complete = statement("kComplete").replace("$1", ":input")
print("BEGIN;")
print(" ".join(claim.split()) + ";")
print("SELECT quote_literal(coalesce(jsonb_agg(jsonb_build_object('id', id, 'owner', lease_owner, 'fence', fence)), '[]')) "
      "AS input FROM agent_messages WHERE lease_expires_at IS NOT NULL AND status = 'running' "
      "AND lease_owner = 'b' || :client_id \\gset")
print(" ".join(complete.split()) + ";")
print("COMMIT;")
PY

declare -A login=([owner]=postgres [open]=cogo_open_login [route]=cogo_bench_login)
for round in $(seq 1 "$rounds"); do
  for v in owner open route; do
    psql_q -c "TRUNCATE agent_messages, bus_events RESTART IDENTITY" \
      -c "INSERT INTO agent_messages (service, role, tenant, payload) SELECT 'bench', 'noop', 't', '{}' FROM generate_series(1, 100000)" \
      -c "VACUUM ANALYZE agent_messages"
    "$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U "${login[$v]}" -n -c 2 -j 2 -T "$seconds" -f "$scratch/claim.sql" cogo \
      >"$scratch/pgbench.log" 2>&1 || { cat "$scratch/pgbench.log" >&2; die "pgbench as $v failed"; }
    echo "$round $v $(psql_q -Atc "SELECT count(*) FROM agent_messages WHERE status = 'done'")" >>"$scratch/done"
  done
  log "round $round/$rounds"
done
python3 - "$scratch/done" "$seconds" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    r, v, done = line.split()
    by.setdefault(v, {})[r] = int(done) / float(sys.argv[2])
print(f"\nclaim 32 + complete, 2 pgbench clients, {len(by['owner'])} interleaved rounds")
print(f"{'login':<8} {'median msg/s':>13} {'vs owner':>9}")
for v in ("owner", "open", "route"):
    ratio = statistics.median(by[v][r] / by["owner"][r] for r in by[v])
    print(f"{v:<8} {statistics.median(by[v].values()):>13.0f} {ratio:>8.3f}x")
PY
psql_q -Atc "SELECT 'server: PostgreSQL ' || current_setting('server_version') || ', ' || $(nproc) || ' cores'"
