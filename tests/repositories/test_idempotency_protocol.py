"""The idempotency protocol below HTTP: claims, fencing, release and purge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text, update

from service.database import get_db_session
from service.extensions import db
from service.models import IdempotencyRecord, UserSession
from service.operations import idempotency
from service.operations.idempotency import Claim, IdempotencyKeyInUse, IdempotencyKeyReused, StoredResponse
from service.repositories import IdempotencyScope, get_user_session_repository

pytestmark = pytest.mark.usefixtures("app_context")

CREATED = StoredResponse(201, {"Content-Type": "application/json"}, b'{"ok": true}')


def scope(key: str = "key-1") -> IdempotencyScope:
    return IdempotencyScope("anonymous", "POST", "/user-sessions", key)


def expire_leases() -> None:
    db.session.execute(update(IdempotencyRecord).values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()


def records() -> list[IdempotencyRecord]:
    found = list(db.session.scalars(select(IdempotencyRecord).execution_options(populate_existing=True)))
    db.session.rollback()
    return found


def session_exists(user_session_uuid: uuid.UUID) -> bool:
    with db.engine.connect() as connection:
        query = select(UserSession.uuid).where(UserSession.uuid == user_session_uuid)
        return connection.execute(query).first() is not None


def create_user_session(user_session_uuid: uuid.UUID) -> StoredResponse:
    with get_db_session() as db_session:
        get_user_session_repository(db_session).create(UserSession(uuid=user_session_uuid))
    return CREATED


def test_the_first_claim_owns_the_key_and_a_second_finds_it_in_flight() -> None:
    owned = idempotency.claim(scope(), "fingerprint")
    assert isinstance(owned, Claim)
    with pytest.raises(IdempotencyKeyInUse):
        idempotency.claim(scope(), "fingerprint")
    with pytest.raises(IdempotencyKeyReused):
        idempotency.claim(scope(), "another fingerprint")


def test_a_completed_claim_is_replayed() -> None:
    owned = idempotency.claim(scope(), "fingerprint")
    assert isinstance(owned, Claim)
    idempotency.perform(owned, lambda: CREATED, lambda response: response)
    assert idempotency.claim(scope(), "fingerprint") == CREATED


def test_work_and_completion_commit_together() -> None:
    owned = idempotency.claim(scope(), "fingerprint")
    assert isinstance(owned, Claim)
    new_uuid = uuid.uuid4()
    idempotency.perform(owned, lambda: create_user_session(new_uuid), lambda response: response)
    assert session_exists(new_uuid)
    (record,) = records()
    assert (record.state, record.response_status, record.response_body) == ("done", 201, b'{"ok": true}')


def test_a_response_not_to_remember_releases_the_key() -> None:
    owned = idempotency.claim(scope(), "fingerprint")
    assert isinstance(owned, Claim)
    idempotency.perform(owned, lambda: CREATED, lambda _response: None)
    assert records() == []
    assert isinstance(idempotency.claim(scope(), "another fingerprint"), Claim)


def test_a_failed_unit_of_work_rolls_back_the_work_and_releases_the_key() -> None:
    owned = idempotency.claim(scope(), "fingerprint")
    assert isinstance(owned, Claim)
    new_uuid = uuid.uuid4()

    def work_then_fail() -> StoredResponse:
        create_user_session(new_uuid)
        db.session.execute(text("SELECT * FROM no_such_table"))
        return CREATED

    with pytest.raises(Exception, match="no_such_table"):
        idempotency.perform(owned, work_then_fail, lambda response: response)
    assert not session_exists(new_uuid)
    assert records() == []


def test_an_owner_that_outlived_its_lease_cannot_complete_and_its_work_is_undone() -> None:
    slow = idempotency.claim(scope(), "fingerprint")
    assert isinstance(slow, Claim)
    expire_leases()
    retry = idempotency.claim(scope(), "fingerprint")
    assert isinstance(retry, Claim)
    assert retry.owner_token != slow.owner_token

    slow_uuid, retry_uuid = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(IdempotencyKeyInUse):
        idempotency.perform(slow, lambda: create_user_session(slow_uuid), lambda response: response)
    assert not session_exists(slow_uuid)
    idempotency.perform(retry, lambda: create_user_session(retry_uuid), lambda response: response)
    assert session_exists(retry_uuid)
    (record,) = records()
    assert (record.state, record.owner_token) == ("done", retry.owner_token)


def test_a_done_record_is_not_taken_over_when_its_lease_has_run_out() -> None:
    owned = idempotency.claim(scope(), "fingerprint")
    assert isinstance(owned, Claim)
    idempotency.perform(owned, lambda: CREATED, lambda response: response)
    expire_leases()
    assert idempotency.claim(scope(), "fingerprint") == CREATED


def test_forgetting_deletes_only_records_past_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idempotency, "FORGET_BATCH_SIZE", 2)
    for index in range(5):
        owned = idempotency.claim(scope(f"old-{index}"), "fingerprint")
        assert isinstance(owned, Claim)
    db.session.execute(update(IdempotencyRecord).values(created_at=datetime.now(UTC) - timedelta(hours=25)))
    db.session.commit()
    assert isinstance(idempotency.claim(scope("fresh"), "fingerprint"), Claim)
    assert idempotency.forget_expired() == 5
    assert [record.idempotency_key for record in records()] == ["fresh"]


def test_the_purge_command_forgets_old_idempotency_records(app: Flask) -> None:
    for key in ("old", "fresh"):
        assert isinstance(idempotency.claim(scope(key), "fingerprint"), Claim)
    db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.idempotency_key == "old")
        .values(created_at=datetime.now(UTC) - timedelta(hours=25))
    )
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["user-sessions", "purge", "--deleted-before", "30d"])
    assert result.exit_code == 0, result.output
    assert "; 1 idempotency records older than 24 hours forgotten" in result.output
    assert [record.idempotency_key for record in records()] == ["fresh"]
