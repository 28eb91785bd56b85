"""``PreparedStatement`` answers what SQLAlchemy's own execution answers, on every test database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, column, select, table, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from service.database import UTCDateTime, get_db_session, one_statement
from service.errors import PreconditionFailed
from service.extensions import db
from service.models import UserSession, UserSessionRow
from service.operations.user_sessions import VersionPrecondition, patch_user_session
from service.repositories import UserSessionRepository, get_user_session_repository
from service.repositories.prepared import PreparedStatement
from service.repositories.query import attribute_columns
from tests.factories import MOMENT, full_user_session, store_user_session

pytestmark = pytest.mark.usefixtures("app_context")

READ = PreparedStatement(
    select(*attribute_columns(UserSession)).where(
        UserSession.uuid == bindparam("identity"), UserSession.live_clause(bindparam("now", type_=UTCDateTime()))
    ),
    UserSessionRow,
)


def store_full_session() -> UserSession:
    """A live session with every attribute set, committed."""
    return store_user_session(full_user_session(deleted_at=None, expires_at=datetime.now(UTC) + timedelta(days=1)))


def test_a_row_equals_the_one_sqlalchemy_reads() -> None:
    stored = store_full_session()
    parameters = {"identity": stored.uuid, "now": datetime.now(UTC)}
    with db.engine.connect() as connection:
        expected = connection.execute(READ.statement, parameters).one()
    row = READ.first(db.engine, parameters)
    assert tuple(row) == tuple(expected)
    assert row._fields == expected._fields
    assert row.uuid == stored.uuid
    assert row.metadata_ == {"a": {"b": [1, 2.5, None, True]}, "ü": "ñ"}
    assert row.completed_at == MOMENT
    assert row.completed_at.tzinfo is not None


def test_parameters_are_converted_as_sqlalchemy_converts_them() -> None:
    stored = store_full_session()
    # An expiry in the past hides the session: the datetime parameter is compared, not its text.
    later = stored.expires_at + timedelta(seconds=1)
    assert READ.first(db.engine, {"identity": stored.uuid, "now": later}) is None
    assert READ.first(db.engine, {"identity": uuid.uuid4(), "now": MOMENT}) is None


def test_a_driver_error_is_sqlalchemys_error_without_its_parameters() -> None:
    missing = table("no_such_table", column("name"))
    broken = PreparedStatement(select(missing.c.name).where(missing.c.name == bindparam("name")))
    with pytest.raises(DBAPIError) as raised:
        broken.first(db.engine, {"name": "ada@example.org"})
    assert not raised.value.connection_invalidated
    assert "no_such_table" in str(raised.value)
    assert "ada@example.org" not in str(raised.value)  # parameters are personal data: never in messages
    assert READ.first(db.engine, {"identity": uuid.uuid4(), "now": MOMENT}) is None  # the pool is fine


def test_inside_a_unit_of_work_a_read_sees_its_writes() -> None:
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        created = repository.create(UserSession(name="uncommitted"))
        row = repository.read_by_uuid(created.uuid)
        assert row is not None
        assert row.name == "uncommitted"


def test_an_inserted_row_has_the_models_defaults_and_is_committed() -> None:
    now = datetime.now(UTC)
    row = get_user_session_repository().insert_row({"name": "Ada", "created_at": now, "updated_at": now})
    db.session.remove()  # forget everything this session knows
    with get_db_session() as db_session:
        stored = get_user_session_repository(db_session).get_by_uuid(row.uuid)
        assert stored is not None
        assert tuple(row) == tuple(getattr(stored, field) for field in row._fields)
    assert row.version == 1
    assert row.metadata_ == {}
    assert row.max_verification_attempts == 3
    assert row.consent_user_data is False


def test_an_insert_refused_by_a_constraint_raises_integrity_error() -> None:
    now = datetime.now(UTC)
    values = {"uuid": uuid.uuid4(), "created_at": now, "updated_at": now}
    get_user_session_repository().insert_row(values)
    with pytest.raises(IntegrityError):
        get_user_session_repository().insert_row(values)
    with pytest.raises(TypeError, match="no_such_attribute"):
        get_user_session_repository().insert_row({**values, "no_such_attribute": 1})


def test_one_statement_inside_a_unit_of_work_fails_alone() -> None:
    now = datetime.now(UTC)
    taken = get_user_session_repository().insert_row({"created_at": now, "updated_at": now}).uuid
    with get_db_session() as db_session:
        kept = get_user_session_repository(db_session).create(UserSession(name="kept"))
        with pytest.raises(IntegrityError), one_statement() as nested:
            get_user_session_repository(nested).insert_row({"uuid": taken, "created_at": now, "updated_at": now})
    assert get_user_session_repository().read_by_uuid(kept.uuid) is not None


def test_a_conditional_update_writes_only_the_version_it_read() -> None:
    stored = store_full_session()
    repository = get_user_session_repository()
    now = datetime.now(UTC)
    written = repository.update_if_unchanged(stored.uuid, stored.version, {"name": "Bo", "updated_at": now}, now=now)
    assert (written.name, written.version, written.updated_at) == ("Bo", stored.version + 1, now)
    assert written.email == stored.email
    stale = repository.update_if_unchanged(stored.uuid, stored.version, {"name": "Cy", "updated_at": now}, now=now)
    assert stale is None
    assert repository.read_by_uuid(stored.uuid).name == "Bo"


def test_a_conditional_update_leaves_an_expired_session_alone() -> None:
    stored = store_full_session()
    after_expiry = stored.expires_at + timedelta(seconds=1)
    repository = get_user_session_repository()
    assert repository.update_if_unchanged(stored.uuid, stored.version, {"name": "Bo"}, now=after_expiry) is None
    assert repository.read_by_uuid(stored.uuid).name == "Ada"


def test_a_patch_that_loses_the_race_is_worked_out_again_on_the_winners_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another writer commits between the patch's read and its write: both changes survive."""
    stored = store_full_session()
    conditional_update = UserSessionRepository.update_if_unchanged

    def after_a_concurrent_write(self: UserSessionRepository, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(UserSessionRepository, "update_if_unchanged", conditional_update)
        patch_user_session(stored.uuid, {"metadata_": {"other-writer": True}})
        return conditional_update(self, *args, **kwargs)

    monkeypatch.setattr(UserSessionRepository, "update_if_unchanged", after_a_concurrent_write)
    result = patch_user_session(stored.uuid, {"metadata_": {"this-writer": True}})
    assert result.version == stored.version + 2
    assert result.metadata_ == {**stored.metadata_, "other-writer": True, "this-writer": True}
    with pytest.raises(PreconditionFailed):
        patch_user_session(stored.uuid, {"name": "x"}, precondition=VersionPrecondition(frozenset({stored.version})))


def test_an_update_must_say_its_caller_invalidates_the_cache() -> None:
    statement = update(UserSession).values(name=bindparam("name")).returning(UserSession.uuid)
    with pytest.raises(ValueError, match="note its changes"):
        PreparedStatement(statement)
    PreparedStatement(statement, changes_noted_by_caller=True)


def test_a_lost_connection_empties_the_pool(database_url: str) -> None:
    """After a restart every pooled connection is dead: one request learns it, the next gets a new one."""
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating server backends is PostgreSQL's")
    engine = db.engine
    held = [engine.raw_connection() for _ in range(3)]
    for connection in held:
        connection.cursor().execute("SELECT 1")
        connection.close()  # back to the pool, idle
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    parameters = {"identity": uuid.uuid4(), "now": MOMENT}
    with pytest.raises(DBAPIError) as lost:
        READ.first(engine, parameters)
    assert lost.value.connection_invalidated
    assert READ.first(engine, parameters) is None
