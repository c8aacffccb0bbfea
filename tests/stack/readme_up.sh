#!/usr/bin/env bash
# The README's main command as a new user runs it: `scripts/cogo-dev up` builds (nothing to do
# here), starts its own PostgreSQL and every daemon, sends a chat request through the edge and
# runs the three flows (indexing, codeBuildTest, upgrade); it exits non-zero when any of them
# does not end as the README says. Then `scripts/cogo-dev down`. Ports, the cluster and the run
# directory are scratch ones so a developer's own stack is not touched.
# Usage: readme_up.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-readme-up.XXXXXX")
chmod 755 "$scratch"  # the postgres user runs the cluster in it
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export COGO_BUILD_DIR=$build COGO_RUN_DIR=$scratch/run COGO_DEV_PG_DIR=$scratch/pg
export COGO_DEV_PG_PORT=$(free) COGO_EDGE_PORT=$(free) COGO_BRAIN_PORT=$(free) COGO_METRICS_SERVER_PORT=$(free)
# The user's shell has no secrets set: `up` makes its own.
unset COGO_JWT_SECRET COGO_PUBLISHABLE_KEY COGO_DATABASE_URL
cleanup() { "$src/scripts/cogo-dev" down >/dev/null 2>&1 || true; rm -rf "$scratch"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$scratch"/run/logs/*.log; do echo "== $f"; tail -15 "$f"; done >&2; exit 1; }

"$src/scripts/cogo-dev" up >"$scratch/up.log" 2>&1 || { cat "$scratch/up.log" >&2; fail "cogo-dev up exited $?"; }
cat "$scratch/up.log"
for expected in '^request [0-9]+: done$' '^indexing run [0-9]+: succeeded$' \
                '^codeBuildTest fix-clamp run [0-9]+: succeeded$' \
                '^codeBuildTest wrong-clamp run [0-9]+: failed \(gate_failed\)$' \
                '^codeBuildTest hang-sum run [0-9]+: failed \(gate_failed\)$' \
                '^upgrade run [0-9]+: succeeded$'; do
  grep -Eq "$expected" "$scratch/up.log" || fail "no line matching $expected"
done
"$src/scripts/cogo-dev" down >/dev/null 2>&1 || fail "cogo-dev down"
for pidfile in "$scratch"/run/pids/*.pid; do
  [ -e "$pidfile" ] && fail "down left $(basename "$pidfile" .pid) running"
done
echo "PASS: the README's stack ran a request and the three flows"
