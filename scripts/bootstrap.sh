#!/usr/bin/env bash
# Installs the Debian packages cogo builds and tests with, only when one is missing.
# Idempotent: a machine that already has everything runs no apt-get at all.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libpqxx-dev libpq-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcpp-httplib-dev
  libcli11-dev libgtest-dev prometheus-cpp-dev libjwt-dev libssl-dev zlib1g-dev
  postgresql-15 postgresql-contrib curl ca-certificates python3
  bubblewrap git  # cogo-build-test-worker's sandbox; promote commits with git
  libhnswlib-dev  # header-only HNSW for cogo-rag-dispatcher
  systemd docker-compose  # systemd-analyze verify and docker-compose config (tests/deploy)
  libjs-chart.js          # the dashboard's charts, served by cogo-metrics-server from its Debian path
  prometheus chromium     # tests: a real Prometheus scrape and promtool; the dashboard in headless Chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
