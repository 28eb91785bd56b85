"""Reach past the API into stored state: read what is committed, move time.

Tests move stored timestamps into the past instead of sleeping, so expiry,
cooldown and retention are tested in milliseconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from service.extensions import db
from service.models import IdempotencyRecord, UserSession
from service.repositories.changes import CHANGES_NOTED, note_change


def stored_user_session(app: Flask, user_session_uuid: str) -> Any:
    """The committed row of the session, every column (hash included)."""
    with app.app_context():
        query = select(UserSession.__table__).where(UserSession.uuid == uuid.UUID(user_session_uuid))
        row = db.session.execute(query).mappings().one()
        db.session.rollback()
        return row


def set_user_session(app: Flask, user_session_uuid: str, **values: Any) -> None:
    """Overwrite columns of a stored session, committed (and invalidated in ``app``'s cache)."""
    with app.app_context():
        statement = (
            update(UserSession)
            .where(UserSession.uuid == uuid.UUID(user_session_uuid))
            .values(**values)
            .returning(UserSession.version)
            .execution_options(**CHANGES_NOTED)
        )
        version = db.session.execute(statement).scalar_one()
        note_change(db.session(), uuid.UUID(user_session_uuid), version)
        db.session.commit()


def idempotency_records(app: Flask) -> list[Any]:
    with app.app_context():
        rows = list(db.session.execute(select(IdempotencyRecord.__table__)).mappings())
        db.session.rollback()
        return rows


def set_idempotency_records(app: Flask, **values: Any) -> None:
    """Overwrite columns of every stored idempotency record, committed."""
    with app.app_context():
        db.session.execute(update(IdempotencyRecord).values(**values))
        db.session.commit()


def count_user_sessions(app: Flask, **equal: Any) -> int:
    with app.app_context():
        query = select(UserSession.uuid).filter_by(**equal)
        count = len(list(db.session.scalars(query)))
        db.session.rollback()
        return count
