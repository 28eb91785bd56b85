"""Live servers on PostgreSQL for the contract tests: the spec against the real thing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_postgres_database, worker_id
from tests.support.live import LiveServer, migrate, start_gunicorn

API_KEY = "contract-test-key"


def start_postgres_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, api_keys: str | None = None
) -> LiveServer:
    """gunicorn with two workers on a fresh, migrated PostgreSQL database of its own
    (skipped without ``TEST_DATABASE_URL``)."""
    url = fresh_postgres_database(f"{name}_{worker_id()}")
    migrate(url)
    log: Path = tmp_path_factory.mktemp(name) / "gunicorn.log"
    return start_gunicorn(url, log, workers=2, environ={"API_KEYS": api_keys} if api_keys else {})


@pytest.fixture(scope="module")
def postgres_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that requires ``API_KEY`` (once the service checks keys)."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    server = start_postgres_server(tmp_path_factory, name, api_keys=API_KEY)
    yield server
    server.stop()
