"""``flask user-sessions purge --deleted-before N``: what it erases, what it keeps, in batches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from service import commands
from service.database import get_db_session, utcnow
from service.extensions import db
from service.models import ConversationItem, IdempotencyRecord, UserSession
from service.repositories.changes import CHANGES_NOTED


def add_session(**fields: Any) -> uuid.UUID:
    with get_db_session() as db_session:
        user_session = UserSession(**fields)
        db_session.add(user_session)
    return user_session.uuid


def stored_uuids() -> set[uuid.UUID]:
    return set(db.session.scalars(select(UserSession.uuid)))


def purge(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["user-sessions", "purge", *args])


@pytest.fixture
def now(app_context: None) -> datetime:
    return utcnow()


def test_erases_sessions_deleted_or_expired_before_the_cutoff_and_keeps_the_rest(app: Flask, now: datetime) -> None:
    day = timedelta(days=1)
    erased = {
        add_session(deleted_at=now - 31 * day),
        add_session(expires_at=now - 31 * day),
        add_session(deleted_at=now - 40 * day, expires_at=now + 10 * day),
        add_session(deleted_at=now - 2 * day, expires_at=now - 35 * day),
    }
    kept = {
        add_session(),
        add_session(deleted_at=now - 29 * day),
        add_session(expires_at=now - 29 * day),
        add_session(expires_at=now + 400 * day),
        add_session(completed_at=now - 100 * day),
    }

    result = purge(app, "--deleted-before", "30d")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 4 user sessions deleted or expired before ")
    assert result.output.count("\n") == 1  # one summary line, no progress bar off a terminal
    assert stored_uuids() == kept
    assert not erased & stored_uuids()


def test_the_cutoff_is_measured_from_now_in_any_unit(app: Flask, now: datetime) -> None:
    recent = add_session(deleted_at=now - timedelta(seconds=30))
    older = add_session(deleted_at=now - timedelta(minutes=2))

    assert purge(app, "--deleted-before", "90s").exit_code == 0
    assert stored_uuids() == {recent}
    assert purge(app, "--deleted-before", "0s").exit_code == 0
    assert stored_uuids() == set()
    assert older not in stored_uuids()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(commands, "PURGE_BATCH_SIZE", 3)
    return 3


@pytest.fixture
def deletes(app: Flask) -> Iterator[list[int]]:
    """The number of rows each DELETE statement named (one entry per batch)."""
    sizes: list[int] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM USER_SESSIONS"):
            sizes.append(statement.count("?") + statement.count("%(") - 2)  # minus the two cutoff bounds

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield sizes
    event.remove(engine, "before_cursor_execute", record)


def test_erases_in_batches_of_bounded_size(app: Flask, now: datetime, small_batches: int, deletes: list[int]) -> None:
    for _ in range(8):
        add_session(deleted_at=now - timedelta(days=60))
    live = add_session()

    result = purge(app, "--deleted-before", "30d")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 8 user sessions")
    assert deletes == [3, 3, 2]
    assert stored_uuids() == {live}


def test_a_session_restored_while_the_purge_runs_is_kept(app: Flask, now: datetime) -> None:
    """The DELETE checks the condition again: a row that stopped qualifying stays."""
    user_session_uuid = add_session(deleted_at=now - timedelta(days=60))
    with get_db_session() as db_session:
        user_session = db_session.get(UserSession, user_session_uuid)
        assert user_session is not None
        user_session.deleted_at = None

    assert commands.purge_user_sessions(now - timedelta(days=30)) == 0
    assert stored_uuids() == {user_session_uuid}


def test_nothing_to_purge_says_so(app: Flask, now: datetime) -> None:
    result = purge(app, "--deleted-before", "1h")
    assert result.exit_code == 0
    assert result.output.startswith("purged 0 user sessions deleted or expired before ")


def test_retention_steps_run_after_the_sessions_and_join_the_summary(
    app: Flask, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[datetime] = []

    def forget_old_records(at: datetime) -> tuple[str, int]:
        seen.append(at)
        return "idempotency records", 7

    monkeypatch.setattr(commands, "RETENTION_STEPS", (forget_old_records,))
    result = purge(app, "--deleted-before", "30d")
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("; 7 idempotency records")
    assert len(seen) == 1
    assert abs(seen[0] - now) < timedelta(seconds=30)


@pytest.mark.parametrize("value", ["30", "d", "30w", "-1d", "1.5d", "", "30 d", "999999999999d", "36501d"])
def test_a_bad_duration_is_refused_with_a_usage_error(app: Flask, value: str) -> None:
    result = purge(app, "--deleted-before", value)
    assert result.exit_code == 2
    assert "--deleted-before" in result.output


def test_the_duration_is_required(app: Flask) -> None:
    result = purge(app)
    assert result.exit_code == 2
    assert "--deleted-before" in result.output


def test_on_a_terminal_a_progress_bar_counts_the_batches(
    app: Flask, now: datetime, small_batches: int, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(5):
        add_session(expires_at=now - timedelta(days=60))
    assert commands.purge_user_sessions(now - timedelta(days=30), progress=True) == 5
    assert "Erasing user sessions" in capsys.readouterr().err
    assert stored_uuids() == set()


def test_erases_the_conversation_items_of_what_it_erases_and_the_records_that_hold_them(app: Flask) -> None:
    client = app.test_client()
    gone, kept = (client.post("/user-sessions", json={}).get_json()["uuid"] for _ in range(2))
    for user_session_uuid in (gone, kept):
        response = client.post(
            f"/user-sessions/{user_session_uuid}/items",
            json={"items": [{"content": "remember me"}, {"content": "and me"}]},
            headers={"Idempotency-Key": f"append-{user_session_uuid}"},
        )
        assert response.status_code == 201
        assert (
            client.post(f"/user-sessions/{user_session_uuid}/items/pop", headers={"Idempotency-Key": "pop"}).status_code
            == 200
        )
    assert client.delete(f"/user-sessions/{gone}").status_code == 204
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.uuid == uuid.UUID(gone))
            .values(deleted_at=utcnow() - timedelta(days=2))
            .execution_options(**CHANGES_NOTED)
        )
        db.session.commit()

    assert purge(app, "--deleted-before", "1d").exit_code == 0

    with app.app_context():
        items = db.session.execute(select(ConversationItem.user_session_uuid)).scalars().all()
        paths = db.session.execute(select(IdempotencyRecord.path)).scalars().all()
        db.session.rollback()
    assert items == [uuid.UUID(kept)]
    assert sorted(paths) == sorted([f"/user-sessions/{kept}/items", f"/user-sessions/{kept}/items/pop"])
