#!/usr/bin/env bash
# deploy/compose/docker-compose.yml and the Dockerfile, without a Docker engine: `docker-compose
# config` must accept the file, and every service's command, flags, ports and COGO_* variables
# must exist in the code (the built binaries' --help, or a string the sources read). Every
# daemon in src/bin must be a service; every daemon needs a /readyz healthcheck on its port (its
# HTTP port, or COGO_HEALTH_PORT for the others) and whatever waits for it waits until it is
# healthy. Rendered also with docker-compose.shards.yml: every route of the request path must
# have workers for every shard the edge and the brain's API publish to.
# Usage: compose_check.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
command -v docker-compose >/dev/null \
  || { echo "docker-compose missing (Debian package docker-compose; scripts/bootstrap.sh installs it)"; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
printf 'POSTGRES_PASSWORD=p\nCOGO_JWT_SECRET=s\nCOGO_PUBLISHABLE_KEY=k\n' >"$scratch/env"
for role in EDGE OPS READER BRAIN EXECUTOR GATEWAY_CHAT RAG_EMBED RAG_DISPATCHER KG_BUILDER CODEGEN BUILD_TEST; do
  printf 'COGO_%s_DB_PASSWORD=%s\n' "$role" "$role" >>"$scratch/env"
done
docker-compose --env-file "$scratch/env" -f "$src/deploy/compose/docker-compose.yml" config >"$scratch/config.yml"
# The roles' names follow COGO_DB_ROLE_PREFIX (sql/023): a second rendering with another prefix.
cp "$scratch/env" "$scratch/env.prefixed" && echo COGO_DB_ROLE_PREFIX=acme >>"$scratch/env.prefixed"
docker-compose --env-file "$scratch/env.prefixed" -f "$src/deploy/compose/docker-compose.yml" config >"$scratch/prefixed.yml"
docker-compose --env-file "$scratch/env" -f "$src/deploy/compose/docker-compose.yml" \
  -f "$src/deploy/compose/docker-compose.shards.yml" config >"$scratch/sharded.yml"

python3 - "$src" "$bin" "$scratch/config.yml" "$scratch/prefixed.yml" "$scratch/sharded.yml" <<'PY'
import json, os, re, subprocess, sys, yaml
src, bin_dir, config, prefixed, sharded = sys.argv[1:]
services = yaml.safe_load(open(config))["services"]
sharded_services = yaml.safe_load(open(sharded))["services"]
problems = []
help_cache = {}
def help_of(exe):
    if exe not in help_cache:
        help_cache[exe] = subprocess.run([os.path.join(bin_dir, exe), "--help"], capture_output=True, text=True).stdout
    return help_cache[exe]
sources = ""
for root in ("src", "include"):
    for d, _, files in os.walk(os.path.join(src, root)):
        for f in files:
            sources += open(os.path.join(d, f), errors="replace").read()
def known_variable(exe, name):
    return f"Env:{name})" in help_of(exe) or f'"{name}"' in sources

daemons = sorted(n for n in os.listdir(os.path.join(src, "src/bin"))
                 if n.startswith("cogo-") and n != "cogo-test-worker")
for d in daemons:
    if d not in services: problems.append(f"no service runs {d}")

image_env = re.findall(r"\b(COGO_[A-Z_]+)=", open(os.path.join(src, "Dockerfile")).read())
for name, s in list(services.items()) + [(f"shards: {n}", s) for n, s in sharded_services.items()]:
    if s.get("image", "").startswith("postgres:"): continue  # the server and the users' psql
    cmd = s.get("command") or []
    exe = cmd[0] if cmd else ""
    if not os.access(os.path.join(bin_dir, exe), os.X_OK):
        problems.append(f"{name}: command {exe!r} is not a cogo executable"); continue
    if exe == "cogo":
        for sub in cmd[1:2]:
            if not re.search(rf"^\s+{re.escape(sub)}\b", help_of(exe), re.M): problems.append(f"{name}: no subcommand {sub}")
    for arg in cmd[1:]:
        if arg.startswith("--") and arg.split("=")[0] not in help_of(exe): problems.append(f"{name}: {exe} has no flag {arg}")
    env = s.get("environment") or {}
    for var in list(env) + image_env:
        if var.startswith("COGO_") and not known_variable(exe, var):
            problems.append(f"{name}: {exe} does not read {var}")
    deps = s.get("depends_on") or {}
    if not deps or any(not isinstance(v, dict) or "condition" not in v for v in deps.values()):
        problems.append(f"{name}: depends_on without a condition")
# Every daemon: a /readyz healthcheck on the port it serves it on (its HTTP port, or the health
# listener's), nothing published but that port, and whoever waits for it waits until it is healthy.
http_port_vars = {"cogo-edge": "COGO_EDGE_PORT", "cogo-orchestrator-brain": "COGO_BRAIN_PORT",
                  "cogo-metrics-server": "COGO_METRICS_SERVER_PORT"}
def check_health(rendering, label):
    for name, s in rendering.items():
        cmd = s.get("command") or []
        if s.get("image", "").startswith("postgres:") or not cmd or cmd[0] == "cogo": continue
        exe, env = cmd[0], s.get("environment") or {}
        port_var = http_port_vars.get(exe) if "--port" in help_of(exe) else "COGO_HEALTH_PORT"
        if port_var is None or port_var not in env or f"Env:{port_var})" not in help_of(exe):
            problems.append(f"{label}{name}: no {port_var or 'port variable'} for its /readyz"); continue
        port = str(env[port_var])
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        if f"127.0.0.1:{port}/readyz" not in test: problems.append(f"{label}{name}: no /readyz healthcheck on {port}")
        for p in s.get("ports", []):
            target = str(p.get("target") if isinstance(p, dict) else p.rsplit(":", 1)[-1].split("/")[0])
            if target != port: problems.append(f"{label}{name}: publishes {target}, listens on {port}")
        for other, o in rendering.items():
            for dep, cond in (o.get("depends_on") or {}).items():
                if dep == name and cond.get("condition") != "service_healthy":
                    problems.append(f"{label}{other}: waits for {name} without service_healthy")

# Shards: the edge puts a request on shard hash(tenant) mod its --shards (the brain's API on
# mod --api-shards) and every hop keeps it, so each route on the request path (decide, execute,
# every routing target) needs, over all services serving it, every shard below that count.
# Which route a daemon serves: its role's routes in sql/023.
def flag(cmd, name, default):
    return cmd[cmd.index(name) + 1] if name in cmd else default
routing = json.load(open(os.path.join(src, "config/routing.example.json")))
path_routes = {"orchestrator/decide", "orchestrator/execute"} | {
    f"{r['target']['service']}/{r['target']['role']}" for r in routing["rules"].values() if "target" in r}
def check_shards(rendering, label):
    shards = 1
    for s in rendering.values():
        cmd = s.get("command") or [""]
        if cmd[0] == "cogo-edge": shards = max(shards, int(flag(cmd, "--shards", "1")))
        if cmd[0] == "cogo-orchestrator-brain": shards = max(shards, int(flag(cmd, "--api-shards", "1")))
    covered = {}
    for name, s in rendering.items():
        kind = kinds.get((s.get("command") or [""])[0])
        if kind is None or not route_of.get(kind): continue
        served = {int(x) for x in flag(s["command"], "--shards", "0").split(",")}
        for route in route_of[kind]: covered.setdefault(route, set()).update(served)
    for route in sorted(path_routes):
        missing = set(range(shards)) - covered.get(route, set())
        if missing: problems.append(f"{label}{route}: no worker for shard(s) {sorted(missing)} of {shards}")
    return shards

# Only the migration connects as the owner; every daemon as the login of its own role (sql/023),
# named with the configured prefix; users.sql sets each login's password and 023 defines each role.
kinds = {"cogo-edge": "edge", "cogo-metrics-server": "reader", "cogo-bus-reclaimer": "ops", "cogo-bus-retention": "ops",
         "cogo-orchestrator-brain": "brain", "cogo-executor-dispatcher": "executor", "cogo-gateway-chat": "gateway_chat",
         "cogo-rag-embed": "rag_embed", "cogo-rag-dispatcher": "rag_dispatcher", "cogo-kg-builder": "kg_builder",
         "cogo-codegen-service": "codegen", "cogo-build-test-worker": "build_test",
         "cogo-gateway-chat-shard1": "gateway_chat"}
users = open(os.path.join(src, "deploy/sql/users.sql")).read()
roles_sql = open(os.path.join(src, "sql/023_route_roles.sql")).read()
route_of = {k: r.split(",") for k, r in re.findall(r"\('([a-z_]+)', '\{([^}]*)\}'", roles_sql)}
check_health(services, "")
check_health(sharded_services, "shards: ")
if check_shards(services, "") != 1: problems.append("docker-compose.yml alone should run one shard")
if check_shards(sharded_services, "shards: ") < 2: problems.append("docker-compose.shards.yml runs fewer than 2 shards")
# A shard's own service is the chat service but for its command (and the profile that keeps it off).
same = lambda s: {k: v for k, v in s.items() if k not in ("command", "profiles")}
if same(services["cogo-gateway-chat-shard1"]) != same(services["cogo-gateway-chat"]):
    problems.append("cogo-gateway-chat-shard1 differs from cogo-gateway-chat in more than its command")
for rendering, prefix in ((services, "cogo"), (yaml.safe_load(open(prefixed))["services"], "acme")):
    for name, s in rendering.items():
        if s.get("image", "").startswith("postgres:") or name == "migrate": continue
        url = str((s.get("environment") or {}).get("COGO_DATABASE_URL", ""))
        if name not in kinds: problems.append(f"{name}: no database role known for it"); continue
        want = f"{prefix}_{kinds[name]}_login"
        if not url.startswith(f"postgresql://{want}:"): problems.append(f"{name}: connects as {url.split(':')[1][2:]!r}, not {want}")
    if rendering["migrate"]["environment"].get("COGO_DB_ROLE_PREFIX") != prefix:
        problems.append(f"migrate does not pass COGO_DB_ROLE_PREFIX={prefix}")
for kind in set(kinds.values()):
    if f"('{kind}', :'{kind}_password')" not in users: problems.append(f"deploy/sql/users.sql sets no password for {kind}")
    if not re.search(rf"\('{kind}', '", roles_sql): problems.append(f"sql/023 defines no role {kind}")
for p in problems: print(p)
if not problems: print(f"compose: {len(services)} services checked against the code")
sys.exit(1 if problems else 0)
PY
