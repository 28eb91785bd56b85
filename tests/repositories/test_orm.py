"""The repository layer and ``get_db_session()``, on every test database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.database import get_db_session, utcnow
from service.extensions import db
from service.models import UserSession
from service.repositories import BaseRepository, UserSessionRepository, get_user_session_repository

pytestmark = pytest.mark.usefixtures("app_context")


class FailingWork(Exception):
    pass


def stored(user_session_uuid: uuid.UUID) -> UserSession | None:
    """What another session sees: read outside the request's session."""
    with db.engine.connect() as connection:
        row = connection.execute(select(UserSession).where(UserSession.uuid == user_session_uuid)).first()
    return row


def test_commits_when_the_block_succeeds() -> None:
    with get_db_session() as db_session:
        user_session = get_user_session_repository(db_session).create(UserSession(name="kept"))
    assert stored(user_session.uuid) is not None


def test_rolls_back_uncommitted_work_when_the_block_raises() -> None:
    new_uuid = uuid.uuid4()
    with pytest.raises(FailingWork), get_db_session() as db_session:
        get_user_session_repository(db_session).create(UserSession(uuid=new_uuid))
        raise FailingWork()
    assert stored(new_uuid) is None


def test_uses_the_requests_db_session_and_leaves_it_open() -> None:
    with get_db_session() as db_session:
        assert db_session is db.session()
    assert db.session() is db_session  # not closed, not removed


def test_a_nested_scope_does_not_commit_the_outer_work() -> None:
    outer_uuid, inner_uuid = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(FailingWork), get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        repository.create(UserSession(uuid=outer_uuid))
        with get_db_session():
            repository.create(UserSession(uuid=inner_uuid))
        assert stored(outer_uuid) is None  # the inner scope's success committed nothing
        raise FailingWork()
    assert stored(outer_uuid) is None
    assert stored(inner_uuid) is None


def test_a_failed_nested_scope_undoes_only_its_own_work() -> None:
    outer_uuid, inner_uuid = uuid.uuid4(), uuid.uuid4()
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        repository.create(UserSession(uuid=outer_uuid))
        with pytest.raises(FailingWork), get_db_session():
            repository.create(UserSession(uuid=inner_uuid))
            raise FailingWork()
    assert stored(outer_uuid) is not None
    assert stored(inner_uuid) is None


def test_the_factory_defaults_to_the_requests_db_session() -> None:
    repository = get_user_session_repository()
    assert isinstance(repository, UserSessionRepository)
    assert isinstance(repository, BaseRepository)
    assert repository.db_session is db.session()


def test_create_sets_defaults_and_version_one() -> None:
    with get_db_session() as db_session:
        user_session = get_user_session_repository(db_session).create(UserSession())
    assert user_session.version == 1
    assert user_session.metadata_ == {}
    assert user_session.consent_user_data is False
    assert user_session.max_verification_attempts == 3
    assert user_session.created_at.tzinfo is not None


def test_create_refuses_a_duplicate_uuid() -> None:
    existing = uuid.uuid4()
    with get_db_session() as db_session:
        get_user_session_repository(db_session).create(UserSession(uuid=existing))
    with pytest.raises(IntegrityError), get_db_session() as db_session:
        get_user_session_repository(db_session).create(UserSession(uuid=existing))


def test_get_by_id_update_and_delete() -> None:
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = repository.create(UserSession(name="before"))
        assert repository.get_by_id(uuid.uuid4()) is None
        repository.update(user_session, {"name": "after"})
        assert user_session.version == 2
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        fetched = repository.get_by_id(user_session.uuid)
        assert fetched is not None and fetched.name == "after"
        repository.delete(fetched)
        assert repository.get_by_id(user_session.uuid) is None


def test_datetimes_round_trip_as_utc_with_microseconds() -> None:
    moment = utcnow().replace(microsecond=123456)
    with get_db_session() as db_session:
        user_session = get_user_session_repository(db_session).create(UserSession(completed_at=moment))
    db.session.expire_all()
    with get_db_session() as db_session:
        fetched = get_user_session_repository(db_session).get_by_uuid(user_session.uuid)
    assert fetched is not None
    assert fetched.completed_at == moment
    assert fetched.completed_at is not None and fetched.completed_at.utcoffset() == timedelta(0)


def test_soft_deleted_and_expired_sessions_are_hidden_unless_included() -> None:
    now = utcnow()
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        deleted = repository.soft_delete(repository.create(UserSession()), now=now)
        expired = repository.create(UserSession(expires_at=now - timedelta(seconds=1)))
        live = repository.create(UserSession(expires_at=now + timedelta(hours=1)))
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        assert repository.get_by_uuid(deleted.uuid) is None
        assert repository.get_by_uuid(expired.uuid) is None
        assert repository.get_by_uuid(live.uuid) is not None
        assert repository.get_by_uuid(deleted.uuid, include_deleted=True) is not None
        assert repository.get_by_uuid(expired.uuid, include_deleted=True) is not None


def test_restore_clears_deletion_and_a_passed_expiry() -> None:
    now = utcnow()
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = repository.create(UserSession(expires_at=now - timedelta(minutes=1)))
        repository.soft_delete(user_session, now=now)
        repository.restore(user_session, now=now)
    assert user_session.deleted_at is None
    assert user_session.expires_at is None
    assert user_session.is_live(utcnow())


def test_purge_erases_the_row() -> None:
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = repository.create(UserSession())
        repository.purge(user_session)
    assert stored(user_session.uuid) is None


def test_a_stale_version_cannot_overwrite_a_newer_one() -> None:
    """The optimistic lock: an UPDATE checks the version it read."""
    from sqlalchemy.orm.exc import StaleDataError

    with get_db_session() as db_session:
        user_session = get_user_session_repository(db_session).create(UserSession(name="v1"))
    with db.engine.begin() as connection:
        connection.execute(
            UserSession.__table__.update().where(UserSession.uuid == user_session.uuid).values(version=2)
        )
    with pytest.raises(StaleDataError), get_db_session() as db_session:
        db_session.add(user_session)
        get_user_session_repository(db_session).update(user_session, {"name": "lost"})


def driver_in_transaction() -> bool:
    """Whether the request's database connection holds an open transaction."""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        return bool(connection.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
    status = connection.connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr]
    return bool(status != psycopg.pq.TransactionStatus.IDLE)


def test_a_read_outside_a_unit_of_work_opens_no_transaction() -> None:
    """A plain read is one statement: no BEGIN and ROLLBACK round trips, no
    snapshot held open while the view serialises."""
    with get_db_session() as db_session:
        user_session = get_user_session_repository(db_session).create(UserSession())
    assert get_user_session_repository().get_by_uuid(user_session.uuid) is not None
    assert not driver_in_transaction()


def test_a_unit_of_work_runs_in_a_transaction() -> None:
    with get_db_session() as db_session:
        get_user_session_repository(db_session).create(UserSession())
        assert driver_in_transaction()
    assert not driver_in_transaction()
