"""Invalidation happens after the outermost commit, and only then; a write of
user sessions that does not record itself is refused."""

from __future__ import annotations

import uuid

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from service.database import get_db_session
from service.extensions import db
from service.models import UserSession
from service.operations import user_sessions as operations
from service.repositories.changes import CHANGES_NOTED, UnnotedUserSessionWrite, pending_changes
from tests.factories import create_user_session
from tests.support.cache import entry_key, fence_key, path, read_twice


def test_a_nested_unit_of_work_invalidates_when_the_outermost_commits(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create_user_session(cached_client)
    read_twice(cached_client, created)
    user_session_uuid = uuid.UUID(created["uuid"])
    with cached_app.app_context():
        with get_db_session() as db_session:
            operations.patch_user_session(user_session_uuid, {"name": "inner"})
            assert pending_changes(db_session) == {user_session_uuid: 2}
            assert store.get(entry_key(created)) is not None, "not before the outermost commit"
        assert store.get(entry_key(created)) is None
        assert store.get(fence_key(created)) == b"2"
        assert pending_changes(db.session()) == {}


def test_a_unit_of_work_that_rolls_back_invalidates_nothing(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create_user_session(cached_client)
    read_twice(cached_client, created)
    with cached_app.app_context():
        with pytest.raises(RuntimeError), get_db_session():
            operations.patch_user_session(uuid.UUID(created["uuid"]), {"name": "rolled back"})
            raise RuntimeError("abandon the unit of work")
        assert pending_changes(db.session()) == {}
        with get_db_session():
            pass  # a later commit does not carry the abandoned writes
    assert store.get(fence_key(created)) is None
    assert cached_client.get(path(created)).get_json() == created


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_a_core_write_of_user_sessions_that_does_not_record_itself_is_refused(
    cached_app: Flask, cached_client: FlaskClient, statement: str
) -> None:
    from sqlalchemy import delete, update

    created = create_user_session(cached_client)
    target = UserSession.uuid == uuid.UUID(created["uuid"])
    unrecorded = update(UserSession).where(target).values(name="x") if statement == "update" else delete(UserSession)
    with cached_app.app_context():
        with pytest.raises(UnnotedUserSessionWrite), get_db_session() as db_session:
            db_session.execute(unrecorded.where(target))
        with get_db_session() as db_session:  # marked as recorded, it runs
            db_session.execute(update(UserSession).where(target).values(name="x").execution_options(**CHANGES_NOTED))
    assert cached_client.get(path(created)).get_json()["name"] == "x"
