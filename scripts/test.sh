#!/usr/bin/env bash
# The test command: set up, lint, type-check, then every test.
# Integration tests start Kafka (jars fetched from Maven Central) and redis-server
# themselves, or use KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set.
# Extra arguments go to pytest (e.g. scripts/test.sh -k replay); without any, the
# interpreted hot path is tested too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest ($(.venv/bin/python -c 'import stockguard._hot as h; print(h.mode())') hot path)"
.venv/bin/python -m pytest "$@"
# The interpreted fallback (STOCKGUARD_PURE=1) must pass the same unit, flow and property
# tests; the integration tests exercise I/O that both builds share.
if [[ $# -eq 0 ]]; then
  echo "== pytest (interpreted hot path: STOCKGUARD_PURE=1)"
  STOCKGUARD_PURE=1 .venv/bin/python -m pytest -m "not integration" -q
fi
