"""Alembic migrations and the models describe the same schema, on every database."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from service.database import schema_objects_for
from service.extensions import db


def schema_differences(app: Flask) -> list[object]:
    with app.app_context(), db.engine.connect() as connection:
        include_object = schema_objects_for(connection.dialect.name)
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object})
        with warnings.catch_warnings():
            # SQLite cannot reflect expression indexes; alembic says so and skips them.
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            differences: list[object] = compare_metadata(context, db.metadata)
        return differences


def test_autogenerate_finds_nothing_after_upgrade(app: Flask) -> None:
    assert schema_differences(app) == []


def index_names(app: Flask) -> set[str]:
    with app.app_context(), db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":  # its inspector skips expression indexes
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'user_sessions'"
        else:
            query = "SELECT indexname FROM pg_indexes WHERE tablename = 'user_sessions'"
        return set(connection.execute(text(query)).scalars())


def test_the_migrated_schema_has_the_listing_indexes(app: Flask) -> None:
    indexes = index_names(app)
    assert {
        "ix_user_sessions_created_at_uuid",
        "ix_user_sessions_updated_at_uuid",
        "ix_user_sessions_lower_email",
    } <= indexes


def test_downgrade_to_base_and_upgrade_again(app: Flask) -> None:
    with app.app_context():
        downgrade(revision="base")
        assert "user_sessions" not in inspect(db.engine).get_table_names()
        upgrade()
        assert "user_sessions" in inspect(db.engine).get_table_names()
    assert schema_differences(app) == []


def test_the_items_revision_undoes_cleanly_and_keeps_the_sessions(app: Flask) -> None:
    with app.app_context():
        downgrade(revision="0003")
        assert "conversation_items" not in inspect(db.engine).get_table_names()
        columns = {column["name"] for column in inspect(db.engine).get_columns("user_sessions")}
        assert "last_item_seq" not in columns
        if db.engine.dialect.name == "sqlite":
            indexes = set(
                db.session.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'user_sessions'")
                ).scalars()
            )
            db.session.rollback()
            assert "ix_user_sessions_lower_email" in indexes  # no batch copy lost the expression index
        upgrade()
        assert "conversation_items" in inspect(db.engine).get_table_names()
    assert schema_differences(app) == []
