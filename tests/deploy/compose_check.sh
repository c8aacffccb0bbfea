#!/usr/bin/env bash
# deploy/compose/docker-compose.yml and the Dockerfile, without a Docker engine: `docker-compose
# config` must accept the file, and every service's command, flags, ports and COGO_* variables
# must exist in the code (the built binaries' --help, or a string the sources read). Every
# daemon in src/bin must be a service; HTTP daemons need a /readyz healthcheck on their port.
# Usage: compose_check.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
command -v docker-compose >/dev/null \
  || { echo "docker-compose missing (Debian package docker-compose; scripts/bootstrap.sh installs it)"; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
printf 'POSTGRES_PASSWORD=p\nCOGO_JWT_SECRET=s\nCOGO_PUBLISHABLE_KEY=k\n' >"$scratch/env"
for role in EDGE WORKER OPS READER; do printf 'COGO_%s_DB_PASSWORD=%s\n' "$role" "$role" >>"$scratch/env"; done
docker-compose --env-file "$scratch/env" -f "$src/deploy/compose/docker-compose.yml" config >"$scratch/config.yml"

python3 - "$src" "$bin" "$scratch/config.yml" <<'PY'
import os, re, subprocess, sys, yaml
src, bin_dir, config = sys.argv[1:]
services = yaml.safe_load(open(config))["services"]
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
for name, s in services.items():
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
    port_var = {"cogo-edge": "COGO_EDGE_PORT", "cogo-orchestrator-brain": "COGO_BRAIN_PORT",
                "cogo-metrics-server": "COGO_METRICS_SERVER_PORT"}.get(exe)
    if "--port" in help_of(exe):
        if port_var is None or port_var not in env or f"Env:{port_var})" not in help_of(exe):
            problems.append(f"{name}: HTTP daemon without its port variable"); continue
        port = str(env[port_var])
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        if f"127.0.0.1:{port}/readyz" not in test: problems.append(f"{name}: no /readyz healthcheck on {port}")
        for p in s.get("ports", []):
            target = str(p.get("target") if isinstance(p, dict) else p.rsplit(":", 1)[-1].split("/")[0])
            if target != port: problems.append(f"{name}: publishes {target}, listens on {port}")
        for other, o in services.items():
            for dep, cond in (o.get("depends_on") or {}).items():
                if dep == name and cond.get("condition") != "service_healthy":
                    problems.append(f"{other}: waits for {name} without service_healthy")
# Only the migration connects as the owner; every daemon as the login of its role.
logins = {"cogo-edge": "cogo_edge_login", "cogo-metrics-server": "cogo_reader_login",
          "cogo-bus-reclaimer": "cogo_ops_login", "cogo-bus-retention": "cogo_ops_login"}
for name, s in services.items():
    if s.get("image", "").startswith("postgres:") or name == "migrate": continue
    url = str((s.get("environment") or {}).get("COGO_DATABASE_URL", ""))
    want = logins.get(name, "cogo_worker_login")
    if not url.startswith(f"postgresql://{want}:"): problems.append(f"{name}: connects as {url.split(':')[1][2:]!r}, not {want}")
users = open(os.path.join(src, "deploy/sql/users.sql")).read()
for login in set(logins.values()) | {"cogo_worker_login"}:
    if f"'{login}'" not in users: problems.append(f"deploy/sql/users.sql does not create {login}")
for p in problems: print(p)
if not problems: print(f"compose: {len(services)} services checked against the code")
sys.exit(1 if problems else 0)
PY
