"""The idempotency table's migration: it matches the model and undoes cleanly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from flask import Flask, current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from service import create_app
from service.extensions import db
from tests.support.databases import database_params, fresh_postgres_database, worker_id


@pytest.fixture(params=database_params())
def empty_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a database with no schema at all."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('migrations') / 'user_sessions.sqlite3'}"
    else:
        url = fresh_postgres_database(f"migrations_{worker_id()}")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "migration-test"})
    with app.app_context():
        yield app
        db.engine.dispose()


def tables() -> set[str]:
    return set(inspect(db.engine).get_table_names())


@pytest.mark.usefixtures("empty_app")
# SQLite cannot reflect user_sessions' expression index; alembic says so and moves on.
@pytest.mark.filterwarnings("ignore:.*expression-based index:")
def test_the_schema_matches_the_models_and_the_revision_undoes_cleanly() -> None:
    upgrade()
    assert "idempotency_records" in tables()
    indexes = {index["name"] for index in inspect(db.engine).get_indexes("idempotency_records")}
    assert "ix_idempotency_records_created_at" in indexes
    command.check(current_app.extensions["migrate"].migrate.get_config())  # raises on any difference

    downgrade(revision="0002")  # the revision before 0003, which made the table
    assert "idempotency_records" not in tables()
    assert "user_sessions" in tables()
    upgrade()
    assert "idempotency_records" in tables()
