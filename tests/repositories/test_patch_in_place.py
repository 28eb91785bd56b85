"""A patch of plain values is one UPDATE, and judges exactly as the read-then-write path does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, update

from service.database import get_db_session
from service.errors import PreconditionFailed, UserSessionNotFound
from service.extensions import db
from service.models import UserSession
from service.operations.user_sessions import VersionPrecondition, patch_user_session
from service.repositories import get_user_session_repository
from service.repositories.changes import CHANGES_NOTED
from service.repositories.user_session_updates import PLAIN_ATTRIBUTES
from service.schemas.user_sessions import UserSessionPatchSchema
from tests.factories import store_user_session

pytestmark = pytest.mark.usefixtures("app_context")

VERIFIED = {"is_email_verified": True, "verification_code_hash": "f" * 64}


@pytest.fixture
def statements(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL each test's statements send to the database, as the driver sees it."""
    sent: list[str] = []
    if database_url.startswith("postgresql"):
        execute = psycopg.Cursor.execute

        def capture(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return execute(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", capture)
        yield sent
        return

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    db.engine.dispose()  # every connection from here on is a traced one
    event.listen(db.engine, "connect", trace)
    try:
        yield sent
    finally:
        event.remove(db.engine, "connect", trace)
        db.engine.dispose()


def store(**attributes: Any) -> UserSession:
    return store_user_session(**{"name": "Ada", "email": "ada@example.org", **attributes})


def stored_row(user_session_uuid: uuid.UUID) -> Any:
    return get_user_session_repository().read_by_id(user_session_uuid)


def test_a_plain_patch_sends_one_update_and_nothing_else(statements: list[str]) -> None:
    stored = store()
    statements.clear()
    written = patch_user_session(stored.uuid, {"name": "Bo", "email": "bo@example.org"})
    assert (written.name, written.email, written.version) == ("Bo", "bo@example.org", stored.version + 1)
    session_statements = [sql for sql in statements if "user_sessions" in sql]
    assert len(session_statements) == 1, statements
    assert session_statements[0].lstrip().upper().startswith("UPDATE")


def test_every_plain_attribute_is_set_in_place() -> None:
    stored = store()
    later = datetime.now(UTC) + timedelta(days=3)
    patch = {
        "name": None,
        "email": "grace@example.org",
        "ip_address": "192.0.2.1",
        "consent_user_data": True,
        "completed_at": later,
        "expires_at": later,
    }
    # Every writable attribute but metadata (which merges): a field added to the schema is set in place too.
    writable = {field.attribute or name for name, field in UserSessionPatchSchema().load_fields.items()}
    plain = writable - {"metadata_", "ttl_seconds"}
    assert set(patch) == plain
    assert plain <= PLAIN_ATTRIBUTES
    written = get_user_session_repository().patch_in_place(stored.uuid, patch, version=None, now=datetime.now(UTC))
    assert {attribute: getattr(written, attribute) for attribute in patch} == patch
    assert tuple(stored_row(stored.uuid)) == tuple(written)


def test_a_patch_that_changes_nothing_writes_nothing(statements: list[str]) -> None:
    stored = store()
    statements.clear()
    result = patch_user_session(stored.uuid, {"name": "Ada", "email": "ada@example.org"})
    assert result.version == stored.version
    updates = [sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1, statements  # the in-place attempt, which matched no row
    assert stored_row(stored.uuid).updated_at == stored.updated_at


def test_a_patch_in_place_honours_if_match() -> None:
    stored = store()
    with pytest.raises(PreconditionFailed):
        patch_user_session(
            stored.uuid, {"name": "Bo"}, precondition=VersionPrecondition(frozenset({stored.version + 1}))
        )
    assert stored_row(stored.uuid).name == "Ada"
    written = patch_user_session(
        stored.uuid, {"name": "Bo"}, precondition=VersionPrecondition(frozenset({stored.version}))
    )
    assert written.version == stored.version + 1


def test_a_patch_in_place_finds_no_deleted_or_expired_session() -> None:
    deleted = store(deleted_at=datetime.now(UTC))
    expired = store(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    for user_session in (deleted, expired):
        with pytest.raises(UserSessionNotFound):
            patch_user_session(user_session.uuid, {"name": "Bo"})
    with pytest.raises(UserSessionNotFound):
        patch_user_session(uuid.uuid4(), {"name": "Bo"})


@pytest.mark.parametrize(
    ("stored_email", "new_email", "stays_verified"),
    [
        ("ada@example.org", "Ada@Example.ORG", True),
        ("ada@example.org", "grace@example.org", False),
        ("ada@example.org", None, False),
        (None, "ada@example.org", False),
        # Python lowers the Kelvin sign to "k": the same address in other case.
        # SQL cannot tell, so this one is judged on a read.
        ("\u212a@example.org", "k@example.org", True),
        ("\u00c4da@example.org", "\u00e4da@example.org", True),
        ("\u00c4da@example.org", "ada@example.org", False),
    ],
)
def test_only_a_new_address_resets_the_verification(
    stored_email: str | None, new_email: str | None, stays_verified: bool
) -> None:
    stored = store(email=stored_email, **VERIFIED, verification_expires_at=datetime.now(UTC) + timedelta(hours=1))
    written = patch_user_session(stored.uuid, {"email": new_email})
    assert written.email == new_email
    if stays_verified:
        assert (written.is_email_verified, written.verification_code_hash) == (True, VERIFIED["verification_code_hash"])
        assert written.verification_expires_at is not None
    else:
        assert (written.is_email_verified, written.verification_code_hash, written.verification_expires_at) == (
            False,
            None,
            None,
        )


def test_a_stored_address_sql_cannot_compare_leaves_the_in_place_update_unapplied() -> None:
    stored = store(email="\u212a@example.org", **VERIFIED)
    repository = get_user_session_repository()
    assert (
        repository.patch_in_place(stored.uuid, {"email": "k@example.org"}, version=None, now=datetime.now(UTC)) is None
    )
    assert stored_row(stored.uuid).version == stored.version


@pytest.mark.parametrize("patch", [{}, {"metadata_": {"a": 1}}, {"email": "\u00e4da@example.org"}])
def test_what_is_not_plain_is_left_to_the_read_path(patch: dict[str, Any], statements: list[str]) -> None:
    stored = store()
    statements.clear()
    assert get_user_session_repository().patch_in_place(stored.uuid, patch, version=None, now=datetime.now(UTC)) is None
    assert statements == []


def test_a_patch_in_place_sets_only_what_it_names() -> None:
    """Another writer's change to a field the patch does not name survives it."""
    stored = store()
    with get_db_session() as db_session:
        db_session.execute(
            update(UserSession).where(UserSession.uuid == stored.uuid).values(ip_address="192.0.2.9"),
            execution_options=CHANGES_NOTED,
        )
    written = patch_user_session(stored.uuid, {"name": "Bo"})
    assert (written.name, written.ip_address) == ("Bo", "192.0.2.9")
