# One entry point for the everyday tasks. `make` alone lists them.
# The scripts they call (scripts/*.sh) stay usable on their own; CI runs .ci/run.

PY := .venv/bin/python
SPEED ?= 1440

.DEFAULT_GOAL := help
.PHONY: help setup demo test check lint fmt typecheck unit integration bench services-start services-stop hooks clean

help: ## list the tasks
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: ## create .venv with stockguard (editable) and its dev tools
	bash scripts/setup.sh

demo: setup ## watch a compressed Cyber Monday (SPEED=1440: about a minute)
	.venv/bin/stockguard demo --speed $(SPEED)

test: ## lint, type-check and run every test (the README's test command)
	bash scripts/test.sh

check: lint typecheck ## lint and type-check, no tests

lint: setup ## ruff check and ruff format --check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

fmt: setup ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

typecheck: setup ## mypy --strict on stockguard, tests and bench
	.venv/bin/mypy

unit: setup ## the tests that need no broker (fast)
	$(PY) -m pytest -m "not integration"

integration: setup ## the tests on the real Kafka broker and Redis (started for you)
	$(PY) -m pytest -m integration

bench: setup ## the replay benchmark (1M events; docs/benchmarks.md has the others)
	$(PY) -m bench.replay_bench

services-start: ## start local Kafka (from Maven Central jars) and redis-server
	bash scripts/services.sh start

services-stop: ## stop them
	bash scripts/services.sh stop

hooks: setup ## install the pre-commit hooks (ruff, ruff format, mypy)
	.venv/bin/pre-commit install

clean: ## remove caches and build output (keeps .venv)
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis out
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
