#!/usr/bin/env bash
# The test command: set up, lint, type-check, then every test.
# Integration tests start Kafka (jars fetched from Maven Central) and redis-server
# themselves, or use KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set.
# Extra arguments go to pytest (e.g. scripts/test.sh -k replay).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
