#!/usr/bin/env bash
# One idempotent set-up for every entry point (make demo, make test, .ci/run):
# system packages, then a project venv with the exact pin set.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
PG_BIN=/usr/lib/postgresql/15/bin
need=()
[ -x "$PG_BIN/initdb" ] || need+=(postgresql-15 postgresql-contrib)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
command -v chromium >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${need[*]}" >&2
    echo "       install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

stamp=.venv/.bascule-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: creating .venv with the pinned stack (requirements.lock)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check 'uv==0.13.9'
start=$(date +%s)
.venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
echo "setup: stack installed in $(( $(date +%s) - start )) s"
echo "$want" > "$stamp"
