"""A statement over ``DB_STATEMENT_TIMEOUT_MS`` is cancelled and answered 503 + Retry-After.

On PostgreSQL the server cancels it (``statement_timeout``); on SQLite a
write that waits for the lock gives up after the busy timeout (at least 1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from service.config import normalise_database_url
from service.extensions import db
from service.models import UserSession
from tests.conftest import make_app

pytestmark = pytest.mark.timing

TIMEOUT_MS = 300


@pytest.fixture
def impatient_app(app: Flask, database_url: str) -> Iterator[Flask]:
    """A second app on the same database, with a short statement timeout."""
    impatient = make_app(database_url, DB_STATEMENT_TIMEOUT_MS=str(TIMEOUT_MS))
    yield impatient
    with impatient.app_context():
        db.engine.dispose()


@pytest.fixture
def lock_holder(database_url: str) -> Iterator[Callable[[Any], Connection]]:
    """Opens a connection that holds a write lock on a session's row until the test ends."""
    engine = create_engine(normalise_database_url(database_url), isolation_level="AUTOCOMMIT")
    connections: list[Connection] = []

    def hold(user_session_uuid: Any) -> Connection:
        connection = engine.connect()
        connections.append(connection)
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
            connection.execute(select(UserSession.uuid).where(UserSession.uuid == user_session_uuid).with_for_update())
        return connection

    yield hold
    for connection in connections:
        connection.close()  # ends the transaction, if the test left it open
    engine.dispose()


def test_a_patch_stuck_behind_a_row_lock_is_a_503_with_retry_after(
    impatient_app: Flask, create_session: Any, lock_holder: Callable[[Any], Connection], database_url: str
) -> None:
    user_session = create_session(name="before")
    client = impatient_app.test_client()
    holder = lock_holder(user_session["uuid"])

    started = time.monotonic()
    response = client.patch(f"/user-sessions/{user_session['uuid']}", json={"name": "after"})
    waited = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.get_json()
    assert body["code"] == "DATABASE_UNAVAILABLE"
    assert "SELECT" not in body["detail"]
    minimum = 1.0 if make_url(database_url).get_backend_name() == "sqlite" else TIMEOUT_MS / 1000
    assert minimum * 0.9 <= waited < 5

    holder.exec_driver_sql("ROLLBACK")
    retried = client.patch(f"/user-sessions/{user_session['uuid']}", json={"name": "after"})
    assert retried.status_code == 200
    assert retried.get_json()["name"] == "after"


def test_a_runaway_query_is_cancelled_and_maps_to_503(impatient_app: Flask, database_url: str) -> None:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's; SQLite is covered by the lock wait above")
    with impatient_app.test_request_context("/user-sessions"):
        started = time.monotonic()
        with pytest.raises(DBAPIError) as raised:
            db.session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 2
        db.session.rollback()
        response = impatient_app.handle_user_exception(raised.value)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["code"] == "DATABASE_UNAVAILABLE"
