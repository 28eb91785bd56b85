"""Shared fixtures: an app per database, migrated once; rows cleared per test.

The suite's tiers, one folder each: ``unit/`` (no I/O, enforced by its
conftest), ``repositories/`` (the data layer on real databases), ``api/`` (the
app through Flask's test client and CLI runner), ``integration/`` (live
gunicorn, private PostgreSQL and Redis servers, subprocesses), ``contract/``
(the spec against a live server). Helpers live in ``support/``; rows and
sessions are made by ``factories.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from hypothesis import settings
from sqlalchemy import delete

from service import create_app
from service.extensions import db
from tests.factories import create_user_session
from tests.support.databases import database_params, drop_fresh_databases, fresh_postgres_database, worker_id
from tests.support.live import LiveServer, migrate, start_gunicorn
from tests.support.redisdb import PrivateRedis

# No per-example deadline: a busy shared machine stalls now and then, and
# Hypothesis would report the stall as a flaky test.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

TEST_SECRET_KEY = "test-secret-key"
SCHEMATHESIS_SUMMARY = Path(__file__).resolve().parent.parent / ".pytest_cache" / "schemathesis-summary.txt"
_SESSION_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show how many cases the schemathesis run tried (tests/contract/test_schemathesis.py),
    and the skips folded by reason: one line per missing program or server."""
    if SCHEMATHESIS_SUMMARY.exists() and SCHEMATHESIS_SUMMARY.stat().st_mtime >= _SESSION_STARTED:
        terminalreporter.write_line(SCHEMATHESIS_SUMMARY.read_text().strip())
    reasons = Counter(
        str(report.longrepr[2]).removeprefix("Skipped: ")
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple)
    )
    if reasons:
        terminalreporter.write_sep("=", "skipped, by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            terminalreporter.write_line(f"SKIPPED {count:>3} {reason}")


@pytest.fixture(scope="session", autouse=True)
def _drop_fresh_databases() -> Iterator[None]:
    """Each worker drops the PostgreSQL databases it made once its last test is done
    (set up first, so torn down after every fixture that uses them)."""
    yield
    drop_fresh_databases()


def make_app(database_url: str, **settings: str) -> Flask:
    """An app on ``database_url``, migrated to head."""
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET_KEY, **settings})
    app.config["TESTING"] = True
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(scope="session", params=database_params())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    # A SQLite file, not ``sqlite://``: the embedded default is a file, and a
    # file lets a test look at committed state through a second connection.
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'user_sessions.sqlite3'}"
    return fresh_postgres_database(f"app_{worker_id()}")


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables (only where it uses the app)."""
    yield
    if "app" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("app")
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def create_session(client: FlaskClient) -> Any:
    """Create a user session through the API; returns its representation."""

    def create(**fields: Any) -> dict[str, Any]:
        return create_user_session(client, **fields)

    return create


@pytest.fixture(scope="session", params=database_params())
def live_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database of its own for a live server (real commits, no cleanup)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('live-sqlite') / 'user_sessions.sqlite3'}"
    else:
        url = fresh_postgres_database(f"live_{worker_id()}")
    migrate(url)
    return url


@pytest.fixture(scope="session")
def live_server(live_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """gunicorn with several workers on each test database."""
    server = start_gunicorn(live_database_url, tmp_path_factory.mktemp("live") / "gunicorn.log")
    yield server
    server.stop()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A ``redis-server`` of the test's own, started; the test may stop and start it.
    Skipped when the machine has no ``redis-server``."""
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_configured_app(app: Flask, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Builds apps with extra settings on the test database, disposing their
    engines afterwards (``app`` empties the tables)."""
    made: list[Flask] = []

    def make(**settings: str) -> Flask:
        configured = make_app(database_url, **settings)
        made.append(configured)
        return configured

    yield make
    for configured in made:
        with configured.app_context():
            db.engine.dispose()
