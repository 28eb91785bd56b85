"""User sessions for tests, made the way each tier makes them.

- through the API: ``create_user_session`` (Flask's test client),
  ``create_live_user_session`` (a live server), ``full_session_body`` (every
  writable field set);
- below it: ``full_user_session`` (a model with every attribute set),
  ``store_user_session`` (committed through the repository);
- for listings: ``random_rows`` and ``store_rows`` (stored directly: the API
  cannot choose timestamps).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from service.database import get_db_session
from service.extensions import db
from service.models import UserSession
from service.repositories import get_user_session_repository
from tests.support.live import LiveServer

MOMENT = datetime(2026, 11, 27, 5, 0, 0, 123456, tzinfo=UTC)


def full_session_body() -> dict[str, Any]:
    """A create body with every writable field set to something a serialiser could get wrong."""
    return {
        "name": "Zoë «quoted» \u2028",
        "email": "Someone@Example.org",
        "ip_address": "2001:db8::1",
        "consent_user_data": True,
        "metadata": {"step": 3, "nested": {"ü": [1, 2.5, None, True, "</script>"]}, "empty": {}},
        "completed_at": "2026-01-02T03:04:05.123456Z",
        "ttl_seconds": 3600,
    }


def create_user_session(client: FlaskClient, headers: Mapping[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """Create a user session through the API; returns its representation."""
    response = client.post("/user-sessions", json=fields, headers=headers)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def create_live_user_session(server: LiveServer, **fields: Any) -> dict[str, Any]:
    """Create a user session on a live server; returns its representation."""
    response = requests.post(server.url("/user-sessions"), json=fields, timeout=10)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def full_user_session(**attributes: Any) -> UserSession:
    """A session, not stored, with every attribute set and none at its default
    (``attributes`` override them)."""
    values: dict[str, Any] = {
        "uuid": uuid.uuid4(),
        "name": "Ada",
        "email": "Ada@Example.org",
        "ip_address": "2001:db8::1",
        "consent_user_data": True,
        "metadata_": {"a": {"b": [1, 2.5, None, True]}, "ü": "ñ"},
        "is_email_verified": True,
        "verification_attempts": 2,
        "max_verification_attempts": 3,
        "verification_expires_at": MOMENT + timedelta(minutes=10),
        "resend_attempts": 1,
        "max_resend_attempts": 3,
        "last_resend_at": MOMENT,
        "created_at": MOMENT,
        "updated_at": MOMENT,
        "completed_at": MOMENT,
        "expires_at": MOMENT + timedelta(days=1),
        "deleted_at": MOMENT,
        "version": 7,
    }
    return UserSession(**{**values, **attributes})


def store_user_session(user_session: UserSession | None = None, **attributes: Any) -> UserSession:
    """Commit ``user_session`` (or one made of ``attributes``) through the repository,
    as a use case would, in the current app context; the request's session is left empty."""
    with get_db_session() as db_session:
        stored = get_user_session_repository(db_session).create(user_session or UserSession(**attributes))
    db.session.remove()
    return stored


# Every seeded timestamp lies on a coarse grid in the past, so rows tie on
# created_at and updated_at (the uuid must break the ties), and a row made
# during a test is newer than all of them.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
EMAILS = ("ana@example.com", "Ana@Example.com", "ben@example.org", "BEN@EXAMPLE.ORG", "zoe@example.net", None)
METADATA_KEYS = ("channel", "step", "a.b", 'we"ird', "ünï")
METADATA_VALUES: tuple[Any, ...] = ("web", "3", 3, "true", True, None, "", {"x": "web"}, ["web"])


@dataclass(frozen=True)
class Row:
    """What the brute-force filter needs of a stored session."""

    uuid: uuid.UUID
    email: str | None
    is_email_verified: bool
    consent_user_data: bool
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    deleted_at: datetime | None
    metadata: Mapping[str, Any]


def random_rows(rng: random.Random, count: int, *, now: datetime) -> list[Row]:
    """``count`` varied sessions: ties, deleted, expired, odd metadata."""
    rows = []
    for _ in range(count):
        created_at = EPOCH + timedelta(seconds=rng.randrange(12), microseconds=rng.choice((0, 0, 1, 999_999)))
        metadata = {key: rng.choice(METADATA_VALUES) for key in rng.sample(METADATA_KEYS, rng.randrange(4))}
        rows.append(
            Row(
                uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
                email=rng.choice(EMAILS),
                is_email_verified=rng.random() < 0.4,
                consent_user_data=rng.random() < 0.6,
                completed_at=created_at + timedelta(minutes=5) if rng.random() < 0.4 else None,
                created_at=created_at,
                updated_at=created_at + timedelta(seconds=rng.choice((0, 0, 3, 7))),
                # Clearly past or clearly future, whatever the server's clock says.
                expires_at=rng.choice((None, None, now - timedelta(days=1), now + timedelta(days=1))),
                deleted_at=now - timedelta(hours=1) if rng.random() < 0.15 else None,
                metadata=metadata,
            )
        )
    return rows


def store_rows(app: Flask, rows: Iterable[Row]) -> None:
    """Insert ``rows`` and commit, as another writer would."""
    with app.app_context():
        for row in rows:
            fields = {name: getattr(row, name) for name in Row.__dataclass_fields__ if name != "metadata"}
            db.session.add(UserSession(**fields, metadata_=dict(row.metadata)))
        db.session.commit()
