# Everything needs only Python 3.11+: each target makes .venv and installs into it.
# `make` alone lists the targets (`make help`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
IS_311 := -c 'import sys; sys.exit(sys.version_info < (3, 11))'

.DEFAULT_GOAL := help
.PHONY: help run test lint lint-spec openapi clean bench-list bench

## help: list the targets (what `make` alone does)
help:
	@echo "make <target>, each making $(VENV) with $(PYTHON) (3.11+) as needed:"
	@sed -n 's/^## \([a-z-]*\): /\1\t/p' $(MAKEFILE_LIST) | awk -F '\t' '{ printf "  %-11s %s\n", $$1, $$2 }'

# A .venv made by a Python older than 3.11, or by one that has since gone, is made again.
ifneq ($(wildcard $(VENV)/pyvenv.cfg),)
ifneq ($(filter-out help clean,$(MAKECMDGOALS)),)
ifneq ($(shell $(BIN)/python $(IS_311) >/dev/null 2>&1 && echo ok),ok)
$(info $(VENV) was made by a Python older than 3.11 (or one that is gone): making it again with $(PYTHON))
$(shell rm -rf $(VENV))
endif
endif
endif

$(BIN)/python:
	@$(PYTHON) $(IS_311) || { echo "$(PYTHON) is $$($(PYTHON) -V 2>&1); this project needs Python 3.11+: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "$(PYTHON) cannot make a virtual environment: apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests drive the first-party client too: it is its own distribution (clients/python),
# with its agents extra (the OpenAI Agents SDK) for the Agents SDK session's test.
$(VENV)/.installed-test: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet -e './clients/python[agents]'
	touch $@

## run: migrate the database (SQLite in ./instance by default) and serve on http://HOST:PORT (127.0.0.1:8000)
run: $(VENV)/.installed-run
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/gunicorn --bind $(HOST):$(PORT) wsgi:app

# Tests that assert a wall-clock bound (marked timing) run after the rest, one at a time:
# beside another test's servers on a 2-core machine, a bound of a second measures the neighbour.
# Both parts run even when the first fails; exit status 5 (nothing selected) is not a failure.
## test: the whole suite (PostgreSQL and Redis too when TEST_DATABASE_URL, TEST_REDIS_URL are set; see README)
test: $(VENV)/.installed-test
	@status=0; \
	echo '$(BIN)/pytest -n 2 --dist loadfile -m "not timing" $(PYTEST_ARGS)'; \
	$(BIN)/pytest -n 2 --dist loadfile -m "not timing" $(PYTEST_ARGS) || [ $$? -eq 5 ] || status=1; \
	echo '$(BIN)/pytest -m timing $(PYTEST_ARGS)'; \
	$(BIN)/pytest -m timing $(PYTEST_ARGS) || [ $$? -eq 5 ] || status=1; \
	exit $$status

## openapi: regenerate the committed openapi.yaml from the code (a test fails when they differ)
openapi: $(VENV)/.installed-run
	$(BIN)/flask --app wsgi openapi write --format yaml openapi.yaml

## lint: ruff, mypy, the layers (import-linter) and hadolint (the Dockerfile), as CI runs them
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service clients/python/user_sessions_client
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

REDOCLY_CLI ?= @redocly/cli@2.77.0

## lint-spec: Redocly CLI's recommended rules on openapi.yaml (needs Node.js and npm; CI runs it)
lint-spec:
	npx --yes $(REDOCLY_CLI) lint openapi.yaml

BENCH_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/user_sessions_bench
BENCH_ROWS ?= 200000
# gunicorn workers of bench-list; bench takes --workers (default 4) through BENCH_ARGS.
BENCH_WORKERS ?= 3
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/15
BENCH_ARGS ?=

## bench: every scenario with and without Redis (drops and re-creates BENCH_DATABASE_URL); see bench/README.md
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_bench.py --database-url $(BENCH_DATABASE_URL) --redis-url $(BENCH_REDIS_URL) --rows $(BENCH_ROWS) $(BENCH_ARGS)

## bench-list: first page vs a page at 90 % depth (drops and re-creates BENCH_DATABASE_URL); see bench/README.md
bench-list: $(VENV)/.installed-test
	$(BIN)/python bench/list_bench.py --database-url $(BENCH_DATABASE_URL) --rows $(BENCH_ROWS) --workers $(BENCH_WORKERS)

## clean: remove .venv, ./instance and the tools' caches
clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
