"""The database goes away under load and comes back: the service answers 503
with Retry-After meanwhile, never a 500 or a hung worker, and heals by itself.

The service runs under a real gunicorn against a private PostgreSQL cluster
that the test stops and starts (the shared server is never touched).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer, migrate, start_gunicorn
from tests.support.pgcluster import PrivatePostgres

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT = 10
HEAL_WITHIN_SECONDS = 5


@dataclass
class Answer:
    at: float
    status: int | None  # None: no HTTP answer at all (connection error or timeout)
    retry_after: str | None = None
    code: str | None = None
    error: str | None = None


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def server_on_private_postgres(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    migrate(private_postgres.url)
    server = start_gunicorn(
        private_postgres.url,
        tmp_path_factory.mktemp("outage") / "gunicorn.log",
        workers=3,
        environ={"DB_CONNECT_TIMEOUT": "1", "DB_POOL_TIMEOUT": "1", "LOG_LEVEL": "WARNING"},
    )
    yield server
    server.stop()


class Load:
    """Client threads creating and reading sessions until told to stop."""

    def __init__(self, server: LiveServer, threads: int = 3) -> None:
        self.server = server
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)

    def _record(self, response: requests.Response | None, error: Exception | None = None) -> None:
        if response is None:
            answer = Answer(time.monotonic(), None, error=repr(error))
        else:
            code = None
            if response.headers.get("Content-Type", "").startswith("application/problem+json"):
                code = response.json().get("code")
            answer = Answer(time.monotonic(), response.status_code, response.headers.get("Retry-After"), code)
        with self._lock:
            self.answers.append(answer)

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                try:
                    created = http.post(self.server.url("/user-sessions"), json={}, timeout=CLIENT_TIMEOUT)
                    self._record(created)
                    if created.status_code == 201:
                        self._record(http.get(self.server.url(created.headers["Location"]), timeout=CLIENT_TIMEOUT))
                except requests.RequestException as error:
                    self._record(None, error)
                    http.close()
                time.sleep(0.01)


def test_outage_answers_503_with_retry_after_and_heals_without_a_restart(
    private_postgres: PrivatePostgres, server_on_private_postgres: LiveServer
) -> None:
    server = server_on_private_postgres
    with Load(server) as load:
        time.sleep(0.5)
        private_postgres.stop()
        stopped_at = time.monotonic()
        time.sleep(1.5)
        private_postgres.start()
        restarted_at = time.monotonic()
        healed_at = None
        while time.monotonic() - restarted_at < HEAL_WITHIN_SECONDS + 2:
            response = requests.post(server.url("/user-sessions"), json={}, timeout=CLIENT_TIMEOUT)
            if response.status_code == 201:
                healed_at = time.monotonic()
                break
            time.sleep(0.05)
        time.sleep(0.5)

    answers = load.answers
    failures = [answer for answer in answers if answer.status not in (200, 201)]
    # Every failure is a 503 problem with Retry-After: no 500, no hang, no dropped connection.
    assert failures, "the outage was not noticed by any request"
    assert all(answer.status == 503 for answer in failures), failures
    assert all(answer.retry_after == "1" and answer.code == "DATABASE_UNAVAILABLE" for answer in failures), failures
    assert any(answer.at > stopped_at + 0.2 and answer.status == 503 for answer in answers)
    assert healed_at is not None, "no request succeeded after the database came back"
    assert healed_at - restarted_at <= HEAL_WITHIN_SECONDS

    # Healed for good: every worker answers again, the same gunicorn master as before.
    statuses = [
        requests.post(server.url("/user-sessions"), json={}, timeout=CLIENT_TIMEOUT).status_code for _ in range(20)
    ]
    assert statuses == [201] * 20
    assert server.process.poll() is None
    ready = requests.get(server.url("/readyz"), timeout=CLIENT_TIMEOUT)
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


def test_readyz_follows_the_database_and_healthz_does_no_io(
    private_postgres: PrivatePostgres, server_on_private_postgres: LiveServer
) -> None:
    server = server_on_private_postgres
    private_postgres.stop()
    try:
        ready = requests.get(server.url("/readyz"), timeout=CLIENT_TIMEOUT)
        assert ready.status_code == 503
        assert ready.headers["Retry-After"] == "1"
        assert ready.json() == {"status": "unavailable", "database": "unavailable", "cache": "disabled"}
        health = requests.get(server.url("/healthz"), timeout=CLIENT_TIMEOUT)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
    finally:
        private_postgres.start()
    deadline = time.monotonic() + HEAL_WITHIN_SECONDS
    while requests.get(server.url("/readyz"), timeout=CLIENT_TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.05)


def test_log_of_the_outage_holds_no_traceback(server_on_private_postgres: LiveServer) -> None:
    log = Path(server_on_private_postgres.log_path).read_text(errors="replace")
    assert "Traceback" not in log
    assert "INTERNAL_ERROR" not in log
