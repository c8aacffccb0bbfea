#!/usr/bin/env bash
# The PM2 ecosystem end to end: installs pm2 from npm into a scratch directory (never globally),
# starts deploy/pm2/ecosystem.config.js against COGO_TEST_DATABASE_URL with a scratch env file
# (mode 600) and PM2_HOME, sends requests through the edge with curl, `pm2 reload`s the chat
# worker while they flow, and checks every request ends done exactly once: each root request is
# done, and each (gateway, chat) child has exactly one `completed` event. Then `pm2 kill`, and
# no daemon's log and no refusal's body shows a secret of the env file.
# The HTTP daemons listen on port 0; the bound port is read from their log line. Each daemon logs
# in as its own role's login (deploy/sql/users.sql; the ecosystem sets PGUSER, the URL names none).
# Usage: pm2_reload.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
url=${COGO_TEST_DATABASE_URL:?COGO_TEST_DATABASE_URL is not set (run through scripts/cogo-dev test)}
requests=${COGO_PM2_TEST_REQUESTS:-24}
tenant=demo

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cogo-pm2.XXXXXX")
export PM2_HOME="$scratch/pm2-home"
pm2="$scratch/npm/node_modules/.bin/pm2"
provider_pid=
cleanup() {
  [ -x "$pm2" ] && "$pm2" kill >/dev/null 2>&1 || true
  [ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$scratch"/logs/*.log; do echo "== $f"; tail -15 "$f"; done >&2; exit 1; }

npm install --prefix "$scratch/npm" --no-audit --no-fund --loglevel=error pm2 >/dev/null \
  || fail "npm install pm2"

# Chat answers take 1 s, so the reload finds handlers running and must drain them.
"$src/tests/deploy/slow_provider.py" "$scratch/provider.port" 1 & provider_pid=$!
for i in $(seq 1 100); do [ -s "$scratch/provider.port" ] && break; sleep 0.05; done
[ -s "$scratch/provider.port" ] || fail "slow provider did not start"

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077
 cat >"$scratch/cogo.env" <<ENV
COGO_DATABASE_URL=${url/\/\/*@/\/\/}
COGO_JWT_SECRET=$secret
COGO_PUBLISHABLE_KEY=pk_test_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
COGO_EDGE_PORT=0
COGO_BRAIN_PORT=0
COGO_METRICS_SERVER_PORT=0
COGO_EDGE_RATE_PER_S=1000
COGO_EDGE_RATE_BURST=1000
COGO_POLICY=$src/config/policy.example.json
COGO_ROUTING=$src/config/routing.example.json
COGO_WORKFLOWS=$src/config/workflows
COGO_DRAIN_GRACE_MS=5000
COGO_PROVIDER_BASE_URL=http://127.0.0.1:$(cat "$scratch/provider.port")/v1
COGO_PROVIDER_API_KEY=sk-test-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
ENV
)
[ "$(stat -c %a "$scratch/cogo.env")" = 600 ] || fail "env file is not mode 600"
mkdir -p "$scratch/logs"
export COGO_ENV_FILE="$scratch/cogo.env" COGO_BIN_DIR="$bin" COGO_LOG_DIR="$scratch/logs" COGO_WORKDIR="$src"
set -a; source "$scratch/cogo.env"; set +a   # for `cogo migrate` and `cogo token`

"$bin/cogo" migrate --database-url "$url" >/dev/null || fail "migrate"
# The daemons' logins (the test cluster trusts local connections: the passwords are never asked).
for kind in EDGE OPS READER BRAIN EXECUTOR GATEWAY_CHAT RAG_EMBED RAG_DISPATCHER KG_BUILDER CODEGEN BUILD_TEST; do
  export "COGO_${kind}_DB_PASSWORD=unused"
done
psql "$url" -q -v ON_ERROR_STOP=1 -f "$src/deploy/sql/users.sql" >/dev/null || fail "deploy/sql/users.sql"
# Only rows of this test count: other tests truncate the tables and ids may be reused.
first_id=$(psql "$url" -Atc 'SELECT coalesce(max(id), 0) FROM agent_messages')
first_event=$(psql "$url" -Atc 'SELECT coalesce(max(id), 0) FROM bus_events')
"$pm2" start "$src/deploy/pm2/ecosystem.config.js" >/dev/null || fail "pm2 start"

# The bound port from the daemon's "listening on http://HOST:PORT" line.
bound_port() {
  local i port
  for i in $(seq 1 200); do
    port=$(cat "$scratch/logs/$1".*.log 2>/dev/null | grep -oE 'http://[^:/ ]+:[0-9]+' | head -1 | sed 's/.*://') || true
    if [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then echo "$port"; return 0; fi
    sleep 0.1
  done
  return 1
}
edge_port=$(bound_port cogo-edge) || fail "edge not ready"
bound_port cogo-orchestrator-brain >/dev/null || fail "brain not ready"
token=$("$bin/cogo" token --role authenticated --tenant "$tenant")

send() {
  curl -sS -X POST "http://127.0.0.1:$edge_port/functions/v1/orchestrator-chat" \
    -H "Authorization: Bearer $token" -H "apikey: $COGO_PUBLISHABLE_KEY" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: pm2-$$-$1" \
    -d "{\"tenant\":\"$tenant\",\"intent\":\"chat\",\"payload\":{\"message\":\"request $1\"}}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' >"$scratch/ids/$1"
}
export -f send
export edge_port token tenant scratch
mkdir -p "$scratch/ids"

# Four clients send the requests; once a quarter is in and a chat handler is running, the chat
# worker is reloaded under them.
old_pid=$("$pm2" pid cogo-gateway-chat)
seq 1 "$requests" | xargs -P 4 -I{} bash -c 'send {}' & clients=$!
until [ "$(ls "$scratch/ids" | wc -l)" -ge $((requests / 4)) ]; do sleep 0.05; done
running_chats() {
  psql "$url" -Atc "SELECT count(*) FROM agent_messages WHERE id > $first_id AND service = 'gateway' AND role = 'chat' AND status = 'running'"
}
for i in $(seq 1 100); do in_flight=$(running_chats); [ "$in_flight" -gt 0 ] && break; sleep 0.05; done
"$pm2" reload cogo-gateway-chat >/dev/null || fail "pm2 reload"
wait "$clients" || fail "a request was not accepted"
new_pid=$("$pm2" pid cogo-gateway-chat)
[ -n "$new_pid" ] && [ "$new_pid" != 0 ] && [ "$new_pid" != "$old_pid" ] \
  || fail "the chat worker was not replaced (pid $old_pid -> $new_pid)"
ids=()
for f in "$scratch"/ids/*; do id=$(cat "$f"); [ -n "$id" ] || fail "request $(basename "$f") got no id"; ids+=("$id"); done
[ "${#ids[@]}" = "$requests" ] || fail "${#ids[@]} of $requests requests accepted"

id_list=$(IFS=,; echo "${ids[*]}")
# This test's messages: its requests and what they led to. Not "every id above first_id": work a
# previous test left queued on the shared database is taken by these daemons too, and its
# children would be counted as this test's.
lineage="WITH RECURSIVE lineage(id) AS (SELECT id FROM agent_messages WHERE id IN ($id_list)
  UNION ALL SELECT m.id FROM agent_messages m JOIN lineage l ON m.parent_id = l.id)"
for i in $(seq 1 300); do
  # The request is over when its root and every message it led to (decide, execute, chat) are.
  read -r open chats_seen <<<"$(psql "$url" -AtF ' ' -c "$lineage SELECT count(*) FILTER (WHERE status NOT IN ('done','failed','dead','cancelled')),
    count(*) FILTER (WHERE service = 'gateway' AND role = 'chat') FROM agent_messages WHERE id IN (SELECT id FROM lineage)")"
  [ "$open" = 0 ] && [ "$chats_seen" -ge "$requests" ] && break
  sleep 0.2
done
done_roots=$(psql "$url" -Atc "SELECT count(*) FROM agent_messages WHERE id IN ($id_list) AND status = 'done'")
[ "$done_roots" = "$requests" ] || fail "$done_roots of $requests requests done"
read -r chats once <<<"$(psql "$url" -AtF ' ' -c "$lineage
  SELECT count(*), count(*) FILTER (WHERE dones = 1) FROM (
    SELECT m.id, (SELECT count(*) FROM bus_events e WHERE e.id > $first_event AND e.message_id = m.id AND e.event = 'completed') AS dones
    FROM agent_messages m WHERE m.id IN (SELECT id FROM lineage) AND m.service = 'gateway' AND m.role = 'chat') c")"
[ "$chats" = "$requests" ] || fail "$chats chat messages for $requests requests (lost or doubled)"
[ "$once" = "$requests" ] || fail "only $once of $chats chat messages finished exactly once"

# Refusals answer with a JSON error that names no secret (a forged token, a wrong key, a bad body).
forged=$(COGO_JWT_SECRET="${COGO_JWT_SECRET}x" "$bin/cogo" token --role service_role)
refusals=$(for auth in "Bearer $forged|$COGO_PUBLISHABLE_KEY" "Bearer $token|${COGO_PUBLISHABLE_KEY}x" "Bearer $token|$COGO_PUBLISHABLE_KEY"; do
  curl -sS -X POST "http://127.0.0.1:$edge_port/functions/v1/orchestrator-chat" -H "Authorization: ${auth%%|*}" \
    -H "apikey: ${auth##*|}" -H 'Content-Type: application/json' -d '{"tenant":'; echo; done)
[ "$(grep -c '"error"' <<<"$refusals")" = 3 ] || fail "refusals without a JSON error: $refusals"

"$pm2" kill >/dev/null
# Every daemon logged, and no log line and no refusal names a secret of the env file.
for daemon in "$src"/src/bin/cogo-*; do
  name=$(basename "$daemon")
  [ "$name" = cogo-test-worker ] && continue
  [ -s "$(ls "$scratch/logs/$name".*.log 2>/dev/null | head -1)" ] || fail "$name wrote no log"
done
for name in COGO_JWT_SECRET COGO_PUBLISHABLE_KEY COGO_PROVIDER_API_KEY; do
  value=${!name}
  ! grep -rqF -- "$value" "$scratch/logs" || fail "a daemon's log shows $name"
  ! grep -qF -- "$value" <<<"$refusals" || fail "a refusal shows $name"
done
claims=$(psql "$url" -Atc "$lineage SELECT count(*) FROM bus_trail e JOIN agent_messages m ON m.id = e.message_id
  WHERE e.id > $first_event AND m.id IN (SELECT id FROM lineage) AND m.service = 'gateway' AND m.role = 'chat' AND e.event = 'claimed'")
echo "pm2: $requests requests done once each ($claims chat claims; $in_flight chat handlers running at the reload) across a reload of cogo-gateway-chat (pid $old_pid -> $new_pid)"
