#!/usr/bin/env bash
# Set-up and entry points. Usage:  bash dev.sh book | test | bench | env
# `test` installs Debian's chromium with apt-get when it runs as root and chromium is missing
# (the browser test of the book needs it); ABALONE_NO_APT=1 skips that.
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

# The browser test of the built book (tests/test_book_browser.py) needs Debian's chromium; it is
# skipped without it. When chromium is missing and this script runs as root with apt-get (CI),
# `dev.sh test` installs it with apt-get, saying so first; ABALONE_NO_APT=1 turns that off.
ensure_chromium() {
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    return 0
  fi
  if [ -n "${ABALONE_NO_APT:-}" ] && [ "${ABALONE_NO_APT}" != 0 ]; then
    echo "dev.sh: chromium not found; ABALONE_NO_APT is set, so not installing it: the browser test will be skipped" >&2
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "dev.sh: chromium not found; installing it for the browser test of the book:" \
         "apt-get update && apt-get install -y chromium (set ABALONE_NO_APT=1 to skip)" >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
      echo "dev.sh: installed $(command -v chromium)" >&2
    else
      echo "dev.sh: could not install chromium; the browser test will be skipped" >&2
    fi
  else
    echo "dev.sh: chromium not found (apt-get install chromium); the browser test will be skipped" >&2
  fi
}

case "${1:-}" in
  env)   setup ;;
  # -n 2: two workers; tests/conftest.py gives the tests of the executed book (test_book_*.py) to one
  # of them, where the chapters execute once, while the other runs the rest of the suite.
  test)  setup; ensure_chromium; shift; python -m pytest -q -n 2 "$@" ;;
  bench) setup; python benchmarks/bench_losses.py ;;
  book)  setup; shift; python scripts/build_book.py "$@" ;;
  *) echo "usage: bash dev.sh book|test|bench|env" >&2; exit 2 ;;
esac
