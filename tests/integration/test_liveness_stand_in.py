"""A liveness probe is answered while every thread of the only worker waits on
the database (here behind a row lock, for up to the statement timeout). With
one thread the worker runs each request on its loop, so its stand-in thread
answers ``/healthz`` meanwhile and hands any other request on to the loop;
with several, the loop answers the probe itself. Against a real gunicorn
with one configured worker.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.config import normalise_database_url
from tests.support.live import LiveServer, start_gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.timing]

STATEMENT_TIMEOUT_MS = 5000
HELD_FOR = 3.0  # seconds the row stays locked: the PATCH waits that long, then succeeds
ANSWER_WITHIN = 1.0
# Time for every PATCH to reach the worker and wait on the lock (a busy machine needs some).
SETTLE = 1.0


@pytest.fixture(params=[1, 2], ids=["one-thread", "two-threads"])
def threads(request: pytest.FixtureRequest) -> int:
    threads: int = request.param
    return threads


@pytest.fixture
def server(live_database_url: str, threads: int, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_gunicorn(
        live_database_url,
        tmp_path / "gunicorn.log",
        workers=1,
        environ={
            "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
            "GUNICORN_THREADS": str(threads),
            "LOG_LEVEL": "WARNING",
        },
    )
    yield server
    server.stop()


@contextmanager
def row_locked(database_url: str, user_session_uuid: str) -> Iterator[None]:
    """The session's row locked against writes by a transaction of the test's own."""
    url = make_url(normalise_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # SQLite locks the whole database for writing
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as holder:
            lock = text("SELECT 1 FROM user_sessions WHERE uuid = :uuid FOR UPDATE")
            holder.execute(lock, {"uuid": user_session_uuid})
            yield
            holder.rollback()
    finally:
        engine.dispose()


def timed(method: str, url: str, **kwargs: object) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=STATEMENT_TIMEOUT_MS / 1000 + 5, **kwargs)  # type: ignore[arg-type]
    return response.status_code, time.monotonic() - started


def test_a_probe_is_answered_while_every_thread_waits_on_the_database(
    server: LiveServer, live_database_url: str, threads: int
) -> None:
    created = requests.post(server.url("/user-sessions"), json={"name": "Ada"}, timeout=10)
    assert created.status_code == 201, created.text
    session_url = server.url(f"/user-sessions/{created.json()['uuid']}")
    answers: dict[str, tuple[int, float]] = {}

    def patch(index: int) -> None:
        answers[f"patch {index}"] = timed("PATCH", session_url, json={"name": "Grace"})

    def read() -> None:
        answers["read"] = timed("GET", session_url)

    with row_locked(live_database_url, created.json()["uuid"]):
        patching = [threading.Thread(target=patch, args=(index,)) for index in range(threads)]
        for thread in patching:
            thread.start()
        time.sleep(SETTLE)  # every thread of the worker is inside a PATCH, waiting for the lock
        reading = threading.Thread(target=read)
        reading.start()
        probes = [timed(method, server.url("/healthz")) for method in ("GET", "HEAD", "GET")]
        time.sleep(max(HELD_FOR - SETTLE - sum(took for _status, took in probes), 0))
    for thread in patching:
        thread.join()
    reading.join()

    assert [status for status, _took in probes] == [200, 200, 200]
    assert max(took for _status, took in probes) < ANSWER_WITHIN, probes
    # The PATCHes got the row once it was let go; the read sent meanwhile was handed on, not lost.
    assert all(answers[f"patch {index}"][0] == 200 for index in range(threads)), answers
    assert answers["read"][0] == 200, answers
    assert answers["read"][1] > 1.0, answers  # answered after a PATCH let its thread go
    assert requests.get(session_url, timeout=10).json()["name"] == "Grace"
