"""The idempotency table's migration: it matches the model and undoes cleanly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from flask import Flask, current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import JSON, LargeBinary, column, inspect, select, table

from service import create_app
from service.extensions import db
from service.models import IdempotencyRecord
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


@pytest.mark.usefixtures("empty_app")
@pytest.mark.filterwarnings("ignore:.*expression-based index:")
def test_records_stored_before_0005_learn_the_session_their_response_carries() -> None:
    """Purge finds a session's stored responses by ``user_session_uuid``: the
    migration fills it in for records stored before it (from the path, or a
    create's Location), so they are erased too."""
    created, restored = uuid.uuid4(), uuid.uuid4()
    upgrade(revision="0003")
    now = datetime.now(UTC)
    records = table(
        "idempotency_records",
        *(column(name) for name in ("api_key_identity", "method", "path", "idempotency_key")),
        *(column(name) for name in ("request_fingerprint", "state", "owner_token", "created_at")),
        column("lease_expires_at"),
        column("response_status"),
        column("response_headers", JSON()),
        column("response_body", LargeBinary()),
    )

    def record(path: str, key: str, state: str = "done", headers: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "api_key_identity": "anonymous",
            "method": "POST",
            "path": path,
            "idempotency_key": key,
            "request_fingerprint": "f" * 64,
            "state": state,
            "owner_token": "o" * 32,
            "created_at": now,
            "lease_expires_at": now,
            "response_status": None if state != "done" else 201,
            "response_headers": headers,
            "response_body": None if state != "done" else b"{}",
        }

    with db.engine.begin() as connection:
        connection.execute(
            records.insert(),
            [
                record("/user-sessions", "create", headers={"Location": f"/user-sessions/{created}"}),
                record(f"/user-sessions/{restored}/restore", "restore", headers={"ETag": '"3"'}),
                record("/user-sessions", "conflict", headers={"Content-Type": "application/problem+json"}),
                record("/user-sessions", "in-flight", state="in_flight"),
            ],
        )
    upgrade()
    with db.engine.connect() as connection:
        found = dict(
            connection.execute(select(IdempotencyRecord.idempotency_key, IdempotencyRecord.user_session_uuid)).all()
        )
    assert found == {"create": created, "restore": restored, "conflict": None, "in-flight": None}

    downgrade(revision="0003")
    columns = {column["name"] for column in inspect(db.engine).get_columns("idempotency_records")}
    assert "user_session_uuid" not in columns
    upgrade()
