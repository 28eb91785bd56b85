# Everything needs only Python 3.11+: each target makes .venv and installs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint openapi clean bench-list bench

$(BIN)/python:
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

## run: migrate the database (SQLite in ./instance by default) and serve on http://$(HOST):$(PORT)
run: $(VENV)/.installed-run
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/gunicorn --bind $(HOST):$(PORT) wsgi:app

## test: the whole suite (PostgreSQL too when TEST_DATABASE_URL is set)
test: $(VENV)/.installed-test
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

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

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
