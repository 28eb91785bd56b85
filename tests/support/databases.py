"""Test databases: SQLite always, PostgreSQL when ``TEST_DATABASE_URL`` is set.

Each pytest-xdist worker gets PostgreSQL databases of its own, made afresh
when first asked for, so workers never see each other's rows; every one is
dropped when the worker's session ends (``drop_fresh_databases``, called by
the root conftest), so a run leaves nothing behind. When the URL is set and
the server does not answer, the tests fail: they never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from service.config import normalise_database_url
from tests.support.requirements import require_postgres_url

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")

# The databases this process made, to drop at the end of its session.
_made: list[str] = []


def database_params() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


def fresh_postgres_database(suffix: str) -> str:
    """Drop and create ``<test database>_<suffix>``; return its URL.

    Skips the test when ``TEST_DATABASE_URL`` is unset.
    """
    url = _server_url()
    name = f"{url.database}_{suffix}".replace("-", "_")
    with _admin(url) as admin, admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    if name not in _made:
        _made.append(name)
    return url.set(database=name).render_as_string(hide_password=False)


def drop_fresh_databases() -> None:
    """Drop every database ``fresh_postgres_database`` made in this process."""
    if not _made:
        return
    url = _server_url()
    with _admin(url) as admin, admin.connect() as connection:
        while _made:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{_made.pop()}" WITH (FORCE)'))


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _server_url() -> URL:
    return make_url(normalise_database_url(require_postgres_url()))


@contextmanager
def _admin(url: URL) -> Iterator[Engine]:
    """An autocommit engine on the server's ``postgres`` database, disposed on exit."""
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()
