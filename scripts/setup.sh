#!/usr/bin/env bash
# Create .venv with stockguard and its dev tools (idempotent; fast when already done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# Re-install only when pyproject.toml changed since the last install.
stamp=.venv/.stockguard-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/python -m pip install -q --upgrade pip >&2
  # The editable install builds nothing: the hot path is compiled in place below.
  STOCKGUARD_PURE=1 .venv/bin/python -m pip install -q -e '.[dev]' >&2
  touch "$stamp"
fi
# The compiled hot path (mypyc, setup.py): rebuilt in place whenever a source is newer than
# its extension, so no stale build runs. STOCKGUARD_PURE=1 skips it (and runs the sources).
if [[ "${STOCKGUARD_PURE:-}" != "1" ]] && ! .venv/bin/python -W ignore -c "import stockguard._hot as h, sys; sys.exit(1 if h.stale() else 0)"; then
  echo "setup: compiling the hot path (mypyc)" >&2
  if .venv/bin/python setup.py -q build_ext --inplace >/tmp/stockguard-mypyc.log 2>&1; then
    # mypyc leaves an unchanged library in place, old time and all: mark it current.
    touch stockguard/_hot__mypyc.*.so
  else
    echo "setup: compiling failed (log: /tmp/stockguard-mypyc.log): the interpreted sources run" >&2
  fi
fi
