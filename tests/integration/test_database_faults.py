"""A database that fails in the ways real ones do: frozen (as a network
partition looks: connections open, nothing answers), read-only (as during a
failover), or dropping every connection (a restart). Each is a 503 with
Retry-After within the statement timeout plus a second, never a hang or a 500;
a read that finds its connection dropped is answered from a fresh one; and
the service heals by itself.

The app runs in this process (the Flask test client) on a private PostgreSQL
cluster the tests freeze (SIGSTOP), make read-only and restart; the shared
server is never touched. ``test_database_freeze_live.py`` does the same under
a real gunicorn.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.database_link import ANSWER_MARGIN
from service.extensions import db
from tests.conftest import make_app
from tests.support.live import migrate
from tests.support.pgcluster import PrivatePostgres
from tests.support.problems import assert_problem
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timing]

STATEMENT_TIMEOUT = 1.0
# The contract: no answer within the statement timeout plus a second is a 503.
ANSWER_WITHIN = STATEMENT_TIMEOUT + 1
# What this shared, busy machine may add to it.
SLACK = 1.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def faulty_app(cluster: PrivatePostgres) -> Iterator[Flask]:
    migrate(cluster.url)
    app = make_app(cluster.url, DB_STATEMENT_TIMEOUT_MS=str(int(STATEMENT_TIMEOUT * 1000)), DB_CONNECT_TIMEOUT="2")
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(faulty_app: Flask, cluster: PrivatePostgres) -> Iterator[FlaskClient]:
    yield faulty_app.test_client()
    # Whatever a test did, the next one starts on a healthy database the process knows to answer.
    wait_until(lambda: faulty_app.test_client().get("/readyz").status_code == 200, "the database to be ready again")


def answered_within(seconds: float, request: Callable[[], TestResponse]) -> TestResponse:
    """``request``'s response, which must come within ``seconds`` (a hung request
    fails the test instead of hanging it: the cluster is thawed when it ends)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = request()
        except BaseException as error:  # reported below
            outcome["error"] = error

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    waited = time.monotonic() - started
    assert not thread.is_alive(), f"no answer within {seconds:.1f} s"
    if "error" in outcome:
        raise outcome["error"]
    response: TestResponse = outcome["response"]
    response.headers["X-Test-Waited"] = f"{waited:.3f}"
    return response


def assert_unavailable(response: TestResponse) -> dict[str, Any]:
    body = assert_problem(response, 503, "DATABASE_UNAVAILABLE")
    assert response.headers["Retry-After"] == "1"
    return body


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/user-sessions", json=fields)
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def test_every_kind_of_request_on_a_frozen_database_is_a_503_within_the_statement_timeout_plus_a_second(
    client: FlaskClient, cluster: PrivatePostgres
) -> None:
    user_session = create(client, name="before")
    path = f"/user-sessions/{user_session['uuid']}"
    requests: dict[str, Callable[[], TestResponse]] = {
        # First: it waits on a pooled connection, then must not wait again to release its key.
        "idempotent create": lambda: client.post("/user-sessions", json={}, headers={"Idempotency-Key": "k1"}),
        "read": lambda: client.get(path),
        "create": lambda: client.post("/user-sessions", json={"name": "x"}),
        "patch": lambda: client.patch(path, json={"name": "after"}),
        "list": lambda: client.get("/user-sessions?limit=5"),
        "delete": lambda: client.delete(path),
    }
    with cluster.frozen():
        for name, request in requests.items():
            response = answered_within(ANSWER_WITHIN + SLACK, request)
            assert response.status_code == 503, (name, response.get_data(as_text=True))
            assert_unavailable(response)

    healed = wait_until(lambda: client.get(path).status_code == 200, "the service to heal", seconds=5)
    assert healed < 2
    assert client.get(path).get_json()["name"] == "before"
    assert client.patch(path, json={"name": "after"}).status_code == 200
    assert client.post("/user-sessions", json={}, headers={"Idempotency-Key": "k1"}).status_code == 201


def test_a_frozen_database_costs_the_first_request_the_whole_wait_and_the_next_ones_none(
    client: FlaskClient, cluster: PrivatePostgres
) -> None:
    path = f"/user-sessions/{create(client)['uuid']}"
    with cluster.frozen():
        first = answered_within(ANSWER_WITHIN + SLACK, lambda: client.get(path))
        assert_unavailable(first)
        # It waited out the deadline (the server could still have answered until then) …
        # The whole wait: the statement timeout and the link's margin (a little under the contract's second).
        assert float(first.headers["X-Test-Waited"]) >= STATEMENT_TIMEOUT + ANSWER_MARGIN - 0.1
        # … and for as long as the database stays silent, the requests after it are told at once
        # (the process tries to connect in the background meanwhile, not on their time).
        frozen_for = time.monotonic() + 3
        while time.monotonic() < frozen_for:
            assert_unavailable(answered_within(0.5, lambda: client.get(path)))
            assert_unavailable(answered_within(0.5, lambda: client.post("/user-sessions", json={})))
            time.sleep(0.1)
    thawed_at = time.monotonic()
    wait_until(lambda: client.get(path).status_code == 200, "the service to heal", seconds=5)
    assert time.monotonic() - thawed_at < 2


def test_readyz_turns_503_within_a_second_of_a_freeze_and_healthz_stays_200(
    client: FlaskClient, cluster: PrivatePostgres
) -> None:
    assert client.get("/readyz").get_json() == {"status": "ok", "database": "ok", "cache": "disabled"}
    with cluster.frozen():
        for _ in range(3):  # the first check waits on a pooled connection; the later ones on that check
            ready = answered_within(1 + SLACK, lambda: client.get("/readyz"))
            assert ready.status_code == 503
            assert ready.headers["Retry-After"] == "1"
            assert ready.get_json() == {"status": "unavailable", "database": "unavailable", "cache": "disabled"}
            assert answered_within(1, lambda: client.get("/healthz")).status_code == 200
    wait_until(lambda: client.get("/readyz").status_code == 200, "readyz to say ready", seconds=5)


def test_a_read_only_database_makes_writes_503s_with_retry_after_and_readyz_a_503(
    client: FlaskClient, cluster: PrivatePostgres
) -> None:
    user_session = create(client, name="before")
    path = f"/user-sessions/{user_session['uuid']}"
    with cluster.read_only():
        wait_until(lambda: client.get("/readyz").status_code == 503, "readyz to see the database read-only")
        ready = client.get("/readyz")
        assert ready.headers["Retry-After"] == "1"
        assert ready.get_json() == {"status": "unavailable", "database": "read_only", "cache": "disabled"}

        writes = {
            "create": lambda: client.post("/user-sessions", json={"name": "x"}),
            "idempotent create": lambda: client.post("/user-sessions", json={}, headers={"Idempotency-Key": "ro"}),
            "patch": lambda: client.patch(path, json={"name": "after"}),
            "patch of metadata": lambda: client.patch(path, json={"metadata": {"a": 1}}),
            "delete": lambda: client.delete(path),
            "purge": lambda: client.delete(f"{path}?purge=true"),
        }
        for name, write in writes.items():
            response = write()
            assert response.status_code == 503, (name, response.get_data(as_text=True))
            body = assert_unavailable(response)
            assert "writes" in body["detail"]
        # Reads go on.
        assert client.get(path).get_json()["name"] == "before"
        assert client.get("/user-sessions?limit=5").status_code == 200

    wait_until(lambda: client.get("/readyz").status_code == 200, "readyz to see the database writable")
    assert client.patch(path, json={"name": "after"}).get_json()["name"] == "after"
    assert client.post("/user-sessions", json={}, headers={"Idempotency-Key": "ro"}).status_code == 201


def test_requests_after_the_server_dropped_every_connection_are_answered_from_fresh_ones(
    client: FlaskClient, cluster: PrivatePostgres
) -> None:
    user_session = create(client, name="before")
    path = f"/user-sessions/{user_session['uuid']}"
    requests: dict[str, Callable[[], TestResponse]] = {
        "read": lambda: client.get(path),
        "list": lambda: client.get("/user-sessions?limit=5"),
        "create": lambda: client.post("/user-sessions", json={}),
        "patch": lambda: client.patch(path, json={"name": "after"}),
        "idempotent create": lambda: client.post("/user-sessions", json={}, headers={"Idempotency-Key": "t"}),
        "readyz": lambda: client.get("/readyz"),
    }
    for name, request in requests.items():
        assert request().status_code < 300, name  # the pool holds a live connection
        assert cluster.terminate_backends() >= 1
        response = request()
        assert response.status_code < 300, (name, response.get_data(as_text=True))


def test_a_read_whose_connection_died_unnoticed_is_run_again_on_a_fresh_one_and_a_write_is_not(
    client: FlaskClient, cluster: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check at checkout sees most dropped connections; one dropped right
    after it is found out by the statement. A read is then run once more; a
    write may have been applied, and is answered 503 (the client retries it
    with its Idempotency-Key)."""
    path = f"/user-sessions/{create(client, name='before')['uuid']}"
    monkeypatch.setattr("service.database_link.dropped_by_server", lambda _connection: False)

    assert client.get(path).status_code == 200
    cluster.terminate_backends()
    read = client.get(path)
    assert read.status_code == 200, read.get_data(as_text=True)
    assert read.get_json()["name"] == "before"

    cluster.terminate_backends()
    assert_unavailable(client.post("/user-sessions", json={"name": str(uuid.uuid4())}))
    assert client.post("/user-sessions", json={}).status_code == 201
