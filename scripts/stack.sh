# shellcheck shell=bash
# Sourced by cogo-dev: start and stop the local stack.
#   stack_up URL   migrate URL, start every daemon built so far (logs in $run_dir/logs, PID files
#                  in $run_dir/pids), wait for /readyz, mint a development JWT, send a sample
#                  request with curl as a user would, poll until it is final, print the result
#                  and its trail, then run the three flows as a user would: index a document
#                  through `indexing` and query it, the `codeBuildTest` sample tasks (one passes
#                  its gate and is promoted, two fail it), and an `upgrade` of the chat agent
#                  (replayed on both versions, offline gate, canary approved by a review, promoted);
#                  read the brain's state with a service_role token, and leave the stack running.
#   stack_down     stop what stack_up started (SIGTERM, then wait for the drain).
# Ports (environment): COGO_EDGE_PORT (8780), COGO_BRAIN_PORT (8781), COGO_METRICS_SERVER_PORT
# (8782: the metrics API and the dashboard). Development secrets are
# generated once into $run_dir/dev.env (mode 600) unless COGO_JWT_SECRET / COGO_PUBLISHABLE_KEY
# are already set. Uses $repo, $build_dir, $run_dir, log and die from cogo-dev.

edge_port=${COGO_EDGE_PORT:-8780}
brain_port=${COGO_BRAIN_PORT:-8781}
metrics_port=${COGO_METRICS_SERVER_PORT:-8782}
stack_tenant=${COGO_DEMO_TENANT:-demo}

# The development secrets: from the environment, else made once and kept in $run_dir/dev.env.
stack_secrets() {
  local env_file="$run_dir/dev.env"
  if [ ! -f "$env_file" ]; then
    (umask 077
     printf 'COGO_JWT_SECRET=%s\nCOGO_PUBLISHABLE_KEY=pk_dev_%s\n' \
       "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
       "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$env_file")
  fi
  local saved_secret=${COGO_JWT_SECRET:-} saved_key=${COGO_PUBLISHABLE_KEY:-}
  # shellcheck disable=SC1090
  source "$env_file"
  export COGO_JWT_SECRET=${saved_secret:-$COGO_JWT_SECRET}
  export COGO_PUBLISHABLE_KEY=${saved_key:-$COGO_PUBLISHABLE_KEY}
}

# stack_pid NAME: the PID in NAME's PID file when that process still runs our binary.
stack_pid() {
  local pidfile="$run_dir/pids/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "/$1" \
    && { echo "$pid"; return 0; }
  rm -f "$pidfile"
  return 1
}

# stack_start NAME ARGS...: start $build_dir/NAME unless it already runs.
stack_start() {
  local name=$1; shift
  if stack_pid "$name" >/dev/null; then log "$name already running (pid $(stack_pid "$name"))"; return 0; fi
  # exec: the PID recorded is the daemon's own, and no shell lingers holding our stdout.
  (cd "$repo" && exec "$build_dir/$name" "$@") >>"$run_dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/pids/$name.pid"
  log "started $name (pid $(cat "$run_dir/pids/$name.pid"), log $run_dir/logs/$name.log)"
}

# stack_wait_ready NAME PORT: until GET /readyz answers 200 (30 s).
stack_wait_ready() {
  local name=$1 port=$2 i
  for i in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    stack_pid "$name" >/dev/null || { tail -20 "$run_dir/logs/$name.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  tail -20 "$run_dir/logs/$name.log" >&2
  die "$name not ready on port $port"
}

# The codeBuildTest sample (examples/codegen-tasks): a git copy of examples/tinylib under
# $run_dir/repos, where the tasks' "repo" points and promoted branches land. Made once.
stack_sample_repo() {
  local dir="$run_dir/repos/tinylib"
  [ -d "$dir/.git" ] && return 0
  mkdir -p "$run_dir/repos"
  cp -r "$repo/examples/tinylib" "$dir"
  git -C "$dir" init -q && git -C "$dir" add -A &&
    git -C "$dir" -c user.name=cogo -c user.email=cogo@localhost commit -qm "tinylib sample" ||
    die "cannot make the sample repository $dir"
  log "sample repository $dir"
}

stack_up() {
  local url=$1
  mkdir -p "$run_dir/logs" "$run_dir/pids"
  export COGO_DATABASE_URL=$url
  export COGO_POLICY=${COGO_POLICY:-$repo/config/policy.example.json}
  export COGO_ROUTING=${COGO_ROUTING:-$repo/config/routing.example.json}
  export COGO_WORKFLOWS=${COGO_WORKFLOWS:-$repo/config/workflows}
  export COGO_ARTIFACTS_DIR=${COGO_ARTIFACTS_DIR:-$run_dir/artifacts}
  export COGO_REPO_ROOTS=${COGO_REPO_ROOTS:-$run_dir/repos}
  stack_secrets
  stack_sample_repo
  "$build_dir/cogo" migrate >/dev/null || die "migration failed"
  log "migrated $url"

  stack_start cogo-orchestrator-brain --port "$brain_port"
  stack_start cogo-gateway-chat
  stack_start cogo-codegen-service
  stack_start cogo-build-test-worker
  stack_start cogo-rag-embed
  stack_start cogo-rag-dispatcher
  stack_start cogo-kg-builder
  stack_start cogo-executor-dispatcher
  stack_start cogo-bus-reclaimer
  stack_start cogo-bus-retention
  stack_start cogo-edge --port "$edge_port"
  stack_start cogo-metrics-server --port "$metrics_port"
  stack_wait_ready cogo-orchestrator-brain "$brain_port"
  stack_wait_ready cogo-edge "$edge_port"
  stack_wait_ready cogo-metrics-server "$metrics_port"
  log "edge ready on http://127.0.0.1:$edge_port, brain on http://127.0.0.1:$brain_port"

  # What a user does: get a token, POST, then poll the status URL.
  local token response id view status i polls=600
  token=$("$build_dir/cogo" token --role authenticated --tenant "$stack_tenant") || die "cannot mint a token"
  log "POST /functions/v1/orchestrator-chat as tenant $stack_tenant"
  response=$(curl -sS -X POST "http://127.0.0.1:$edge_port/functions/v1/orchestrator-chat" \
    -H "Authorization: Bearer $token" -H "apikey: $COGO_PUBLISHABLE_KEY" \
    -H 'Content-Type: application/json' \
    -d "{\"tenant\":\"$stack_tenant\",\"intent\":\"chat\",\"payload\":{\"message\":\"Hello, cogo! What can you do?\"}}")
  echo "$response"
  id=$(printf '%s' "$response" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') \
    || die "the edge did not accept the request: $response"
  for i in $(seq 1 "$polls"); do
    view=$(curl -sS "http://127.0.0.1:$edge_port/functions/v1/orchestrator-chat/$id" \
      -H "Authorization: Bearer $token" -H "apikey: $COGO_PUBLISHABLE_KEY")
    status=$(stack_run_status "$view")
    case $status in done|failed) break ;; esac
    sleep 0.1
  done
  printf '%s' "$view" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("request %s: %s" % (v["id"], v["status"]))
if v.get("result") is not None:
    print("result (from %s):" % v["result_from"]["route"])
    print(json.dumps(v["result"], indent=2))
if v.get("error"):
    print("error: " + v["error"])
print("trail:")
for e in v["trail"]:
    d = e.get("detail") or {}
    extra = " ".join("%s=%s" % (k, d[k]) for k in ("child_id", "target", "model", "status", "error") if k in d)
    print("  %-5s %-22s %-18s %s" % (e["message_id"], e["route"], e["event"], extra))
'
  stack_index_demo "$token"
  stack_codegen_demo "$token"

  # The brain's operator API takes service_role tokens only.
  local admin
  admin=$("$build_dir/cogo" token --role service_role --ttl 600) || die "cannot mint a service token"
  stack_upgrade_demo "$admin"
  curl -fsS "http://127.0.0.1:$brain_port/api/orchestrator/state" -H "Authorization: Bearer $admin" \
    | python3 -c 'import json,sys; s=json.load(sys.stdin); print("brain: %d in flight, %d workers" % (s["in_flight"], len(s["workers"])))' \
    || die "the brain API did not answer with a service token"
  # The dashboard asks for a token; a URL carrying one in its fragment (which the browser never
  # sends to a server) is written to a private file rather than to this log.
  (umask 077
   printf 'http://127.0.0.1:%s/#token=%s\n' "$metrics_port" \
     "$("$build_dir/cogo" token --role service_role --ttl 43200)" >"$run_dir/dashboard.url") \
    || die "cannot mint a dashboard token"
  log "dashboard: http://127.0.0.1:$metrics_port/ (signed-in URL, valid 12 h, in $run_dir/dashboard.url)"
  log "stack left running; logs in $run_dir/logs; stop with: scripts/cogo-dev down"
}

# stack_run_status VIEW: the status of a request's or a workflow run's JSON view.
stack_run_status() { printf '%s' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }

# stack_wait_run TOKEN RUN TENTHS: poll a workflow run on the brain until it ends (at most TENTHS
# tenths of a second) and print its view.
stack_wait_run() {
  local token=$1 run=$2 tenths=$3 view status i
  for i in $(seq 1 "$tenths"); do
    view=$(curl -sS "http://127.0.0.1:$brain_port/api/workflows/runs/$run" -H "Authorization: Bearer $token")
    status=$(stack_run_status "$view")
    case $status in succeeded|failed|timed_out|cancelled) break ;; esac
    sleep 0.1
  done
  printf '%s' "$view"
}

# stack_start_run TOKEN BODY: start a workflow run on the brain; prints its id.
stack_start_run() {
  curl -sS -X POST "http://127.0.0.1:$brain_port/api/workflows/execute" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -d "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["runId"])'
}

# stack_index_demo TOKEN: what indexing looks like to a user: start an `indexing` run on the brain
# with a small document, poll the run until it ends, then ask a question of the tenant's chunks
# and look an entity up in its graph.
stack_index_demo() {
  local token=$1 brain="http://127.0.0.1:$brain_port" run status view
  local doc='{"workflowId":"indexing","parameters":{"doc_id":"cogo-overview","title":"About cogo","text":"cogo is an agent-orchestration platform built on PostgreSQL. The Orchestrator Brain uses PostgreSQL as its bus: every step of a workflow is a message in one table, and the Workflow Engine advances a run only in the transaction that consumes a message.\n\nThe Indexing Workflow splits a document into chunks. The Embedding Worker stores each chunk with its vector, and the Graph Builder extracts entities and relations with the chunk that said them.\n\nQueries go to the Rag Dispatcher. The Rag Dispatcher keeps an HNSW index in memory, built from PostgreSQL and kept current by a cursor over the chunks table, so several dispatchers can answer side by side."}}'
  log "POST $brain/api/workflows/execute (indexing) as tenant $stack_tenant"
  run=$(stack_start_run "$token" "$doc") || die "the brain did not start the indexing run"
  view=$(stack_wait_run "$token" "$run" 300)
  status=$(stack_run_status "$view")
  printf '%s' "$view" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("indexing run %s: %s" % (v["runId"], v["status"]))
for s in (s for s in v["steps"] if s["type"] == "publish"):
    out = s.get("output") or {}
    extra = " ".join("%s=%s" % (k, out[k]) for k in ("status", "chunks", "entities", "relations") if k in out)
    print("  step %-10s %-10s %s" % (s["node"], s["status"], extra))
'
  [ "$status" = succeeded ] || die "the indexing run ended $status"
  log "POST $brain/api/rag/query"
  curl -sS -X POST "$brain/api/rag/query" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"query":"which component keeps the HNSW index in memory?","k":2}' | python3 -c '
import json, sys
for r in json.load(sys.stdin)["results"]:
    print("  %.3f %s#%s: %s" % (r["score"], r["doc_id"], r["chunk_id"], r["text"][:100].replace("\n", " ")))
'
  log "GET $brain/api/kg/entities?name=rag+dispatcher"
  curl -sS "$brain/api/kg/entities?name=rag+dispatcher" -H "Authorization: Bearer $token" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["entities"][:3]:
    rel = ", ".join("%s %s" % (r["type"], r["entity"]["name"]) for r in e["relations"][:4])
    print("  %s (%s, %d mentions): %s" % (e["name"], e["type"], e["mentions"], rel))
'
}

# stack_codegen_demo TOKEN: the codeBuildTest sample tasks (examples/codegen-tasks), as the README
# shows them: a correct patch passes its gate and is committed to its branch; a wrong patch and a
# hanging test fail theirs.
stack_codegen_demo() {
  local token=$1 task body run view status expected
  for task in fix-clamp:succeeded wrong-clamp:failed hang-sum:failed; do
    expected=${task#*:} task=${task%%:*}
    # The sample's "repo" is relative to the repository root; the brain's repository roots are
    # $run_dir/repos, wherever that is.
    body=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); t["parameters"]["repo"]=sys.argv[2]; print(json.dumps(t))' \
      "$repo/examples/codegen-tasks/$task.json" "$run_dir/repos/tinylib") || die "cannot read the $task sample"
    log "POST /api/workflows/execute (codeBuildTest: $task)"
    run=$(stack_start_run "$token" "$body") || die "the brain did not start the $task run"
    view=$(stack_wait_run "$token" "$run" 1200)
    status=$(stack_run_status "$view")
    printf '%s' "$view" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("codeBuildTest %s run %s: %s%s" % (sys.argv[1], v["runId"], v["status"],
                                         " (%s)" % v["reason"] if v.get("reason") else ""))
for s in v["steps"]:
    out = s.get("output") or {}
    if s["node"] == "buildTest":
        tests = out.get("tests") or {}
        extra = "build ok=%s tests passed=%s failed=%s timed_out=%s" % ((out.get("build") or {}).get("ok"),
            tests.get("passed"), tests.get("failed"), (out.get("limits") or {}).get("timed_out"))
    elif s["type"] == "gate":
        failed = ["%s %s %s (was %s)" % (c["path"].split("/output/")[-1], c["op"], c["expected"], c["actual"])
                  for c in out.get("checks", []) if not c["ok"]]
        extra = "failed: " + "; ".join(failed) if failed else "all checks passed"
    else:
        extra = " ".join("%s=%s" % (k, out[k]) for k in ("branch", "commit") if k in out)
    if s["type"] in ("publish", "gate"):
        print("  step %-10s %-10s %s" % (s["node"], s["status"], extra))
' "$task"
    [ "$status" = "$expected" ] || die "codeBuildTest $task ended $status, expected $expected"
  done
}

# stack_upgrade_demo ADMIN: an operator upgrades the chat agent: propose a new version, start the
# `upgrade` workflow with the labelled routing set (replayed on both versions, then the offline
# gate), approve the canary with a review event, and show the promotion.
stack_upgrade_demo() {
  local admin=$1 brain="http://127.0.0.1:$brain_port" agent=chat-assistant baseline candidate run view status
  baseline=$(curl -fsS "$brain/api/agents/$agent" -H "Authorization: Bearer $admin" | python3 -c '
import json, sys
print(next(v["version"] for v in json.load(sys.stdin)["versions"] if v["status"] == "active"))') \
    || die "the brain has no active version of $agent"
  # A new version name each time: a stack that ran the demo before has promoted the last one.
  candidate="demo-$(date -u +%Y%m%d%H%M%S)"
  log "POST /api/agents/$agent/versions ($candidate; active: $baseline)"
  curl -fsS -X POST "$brain/api/agents/$agent/versions" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' \
    -d "{\"version\":\"$candidate\",\"model\":\"offline-deterministic\",\"note\":\"cogo-dev up demo\"}" >/dev/null \
    || die "the brain refused the proposed version"
  log "POST /api/workflows/execute (upgrade $agent $baseline -> $candidate)"
  run=$(stack_start_run "$admin" "{\"workflowId\":\"upgrade\",\"tenant\":\"ops\",\"parameters\":{\"agentId\":\"$agent\",
    \"candidateVersion\":\"$candidate\",\"baselineVersion\":\"$baseline\",\"evaluationSet\":\"routing\"}}") \
    || die "the brain did not start the upgrade run"
  # A person approves the canary; the review waits in the run until the observation starts.
  curl -fsS -X POST "$brain/api/workflows/runs/$run/events" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' \
    -d '{"name":"review","data":{"action":"approve","by":"cogo-dev","reason":"demo"}}' >/dev/null \
    || die "the brain refused the review event"
  view=$(stack_wait_run "$admin" "$run" 1800)
  status=$(stack_run_status "$view")
  printf '%s' "$view" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("upgrade run %s: %s" % (v["runId"], v["status"]))
for s in v["steps"]:
    out = s.get("output") or {}
    extra = ""
    if s["node"] == "evaluate" and "candidate" in out:
        extra = " ".join("%s quality=%s failure_rate=%s" % (k, out[k].get("quality"), out[k].get("failure_rate"))
                         for k in ("baseline", "candidate") if isinstance(out.get(k), dict))
    elif "passed" in out:
        extra = "passed=%s" % out["passed"]
    print("  step %-12s %-10s %s" % (s["node"], s["status"], extra))
'
  [ "$status" = succeeded ] || die "the upgrade run ended $status"
  curl -fsS "$brain/api/agents/$agent" -H "Authorization: Bearer $admin" | python3 -c '
import json, sys
for v in json.load(sys.stdin)["versions"]:
    print("  %s %-24s %-8s weight %s" % (sys.argv[1], v["version"], v["status"], v.get("weight")))
' "$agent"
}

stack_down() {
  local pidfile name pid i
  [ -d "$run_dir/pids" ] || return 0
  for pidfile in "$run_dir"/pids/*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    if pid=$(stack_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && log "$name (pid $pid) still draining after 30 s"
      log "stopped $name"
    fi
    rm -f "$pidfile"
  done
}
