#!/usr/bin/env bash
# Set-up and entry points. Usage:  bash dev.sh book | test | bench | env
# Creates (or reuses) the virtual environment .venv with Python 3.11 and installs
# the project with every extra. torch is pinned to the CPU build 2.13.0 first so
# that a machine without GPU never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${ABALONE_VENV:-.venv}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  local stamp="$VENV/.installed-$(cat pyproject.toml requirements-cpu.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    python -m pip install -q --upgrade pip
    python -m pip install -q -r requirements-cpu.txt
    python -m pip install -q -e ".[all]"
    touch "$stamp"
  fi
}

# The browser check of the built book needs Debian's chromium; install it when we can.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "note: could not install chromium; the browser test will be skipped" >&2
  else
    echo "note: chromium not found (apt-get install chromium); the browser test will be skipped" >&2
  fi
}

case "${1:-}" in
  env)   setup ;;
  test)  setup; ensure_chromium; shift; python -m pytest -q -n 2 "$@" ;;
  bench) setup; python benchmarks/bench_losses.py ;;
  book)  setup; shift; python scripts/build_book.py "$@" ;;
  *) echo "usage: bash dev.sh book|test|bench|env" >&2; exit 2 ;;
esac
