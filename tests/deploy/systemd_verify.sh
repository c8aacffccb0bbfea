#!/usr/bin/env bash
# systemd-analyze verify on every unit in deploy/systemd, against the binaries just built.
# The units name /usr/local/bin/...; verify insists the executables exist, so a scratch copy
# points them at the build directory. Also checks that cogo.target lists every daemon in src/bin.
# Usage: systemd_verify.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (Debian package systemd)"; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for unit in "$src"/deploy/systemd/*.service "$src"/deploy/systemd/*.target; do
  sed "s|/usr/local/bin/|$bin/|g" "$unit" >"$scratch/$(basename "$unit")"
done

# Every daemon (src/bin/cogo-*, not the CLI and not the test worker) is in cogo.target.
daemons=()
for dir in "$src"/src/bin/cogo-*; do
  name=$(basename "$dir")
  [ "$name" = cogo-test-worker ] && continue
  daemons+=("$name")
  grep -qx "Wants=cogo@$name.service" "$src/deploy/systemd/cogo.target" \
    || { echo "cogo.target does not start $name"; exit 1; }
  [ -x "$bin/$name" ] || { echo "$bin/$name not built"; exit 1; }
done

# Instances of the template: verify resolves cogo@NAME.service from cogo@.service in the same dir.
units=("$scratch/cogo-migrate.service" "$scratch/cogo.target")
for name in "${daemons[@]}"; do
  cp "$scratch/cogo@.service" "$scratch/cogo@$name.service"
  units+=("$scratch/cogo@$name.service")
done
# verify prints problems but may still exit 0 for warnings: any output is a failure.
out=$(cd "$scratch" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "${units[@]}" 2>&1) || {
  echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; exit 1; fi

# The drain contract: TimeoutStopSec above the default drain grace.
grace_ms=$(sed -n 's/^Environment=COGO_DRAIN_GRACE_MS=//p' "$src/deploy/systemd/cogo@.service")
stop_s=$(sed -n 's/^TimeoutStopSec=//p' "$src/deploy/systemd/cogo@.service")
((stop_s * 1000 > grace_ms)) || { echo "TimeoutStopSec=$stop_s s is not above the drain grace $grace_ms ms"; exit 1; }
echo "verified ${#units[@]} units for ${#daemons[@]} daemons"
