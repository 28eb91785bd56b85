"""Test databases: SQLite always, PostgreSQL when ``TEST_DATABASE_URL`` is set.

Each pytest-xdist worker gets PostgreSQL databases of its own, made afresh at
the start of the run, so workers never see each other's rows. When the URL is
set and the server does not answer, the tests fail: they never skip.
"""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.config import normalise_database_url

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


def database_params() -> list[str]:
    return ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


def fresh_postgres_database(suffix: str) -> str:
    """Drop and create ``<test database>_<suffix>``; return its URL."""
    assert POSTGRES_URL, "TEST_DATABASE_URL is not set"
    url = make_url(normalise_database_url(POSTGRES_URL))
    name = f"{url.database}_{suffix}".replace("-", "_")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
