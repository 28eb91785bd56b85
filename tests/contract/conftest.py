"""Live servers on PostgreSQL for the contract tests: the spec against the real thing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.proxy import LossyProxy
from tests.support.databases import fresh_postgres_database, worker_id
from tests.support.live import LiveServer, migrate, start_gunicorn
from user_sessions_client import UserSessionsClient

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


class RecordedSleep:
    """Stands in for ``time.sleep``: remembers how long the client would wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sessions(postgres_server: LiveServer) -> Iterator[UserSessionsClient]:
    with UserSessionsClient(postgres_server.base_url, api_key=API_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def proxy(postgres_server: LiveServer) -> Iterator[LossyProxy]:
    lossy = LossyProxy(postgres_server.base_url)
    yield lossy
    lossy.stop()


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def proxied(proxy: LossyProxy, sleep: RecordedSleep) -> Iterator[UserSessionsClient]:
    with UserSessionsClient(proxy.base_url, api_key=API_KEY, sleep=sleep, backoff=0.01) as client:
        yield client
