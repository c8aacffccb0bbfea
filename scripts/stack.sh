# shellcheck shell=bash
# Sourced by cogo-dev: start and stop the local stack. Daemons run in the background with their
# logs and PID files under $run_dir; `cogo-dev down` stops them.

# start_daemon NAME ARGS...: start build/NAME unless it is already running.
start_daemon() {
  local name=$1; shift
  local pid_file="$run_dir/$name.pid"
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    log "$name already running (pid $(cat "$pid_file"))"
    return
  fi
  COGO_DATABASE_URL=$url nohup "$build_dir/$name" "$@" >>"$run_dir/$name.log" 2>&1 &
  echo $! >"$pid_file"
  log "started $name (pid $!, log $run_dir/$name.log)"
}

stack_up() {
  url=$1
  mkdir -p "$run_dir"
  export COGO_DATABASE_URL=$url
  "$build_dir/cogo" migrate >/dev/null
  start_daemon cogo-test-worker --service demo --role echo --shards 0 --concurrency 4
  local id
  id=$("$build_dir/cogo" publish --service demo --role echo --tenant demo-tenant \
         '{"hello":"cogo"}' | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  log "published message $id to demo/echo; waiting for the result"
  "$build_dir/cogo" wait "$id" --timeout 30
  log "stack is up: COGO_DATABASE_URL=$url (stop it with scripts/cogo-dev down)"
}

stack_down() {
  local pid_file name pid
  for pid_file in "$run_dir"/*.pid; do
    [ -e "$pid_file" ] || continue
    name=$(basename "$pid_file" .pid)
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && { log "$name did not drain in 10 s; killing"; kill -KILL "$pid"; }
      log "stopped $name"
    fi
    rm -f "$pid_file"
  done
}
