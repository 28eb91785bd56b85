"""Rows for listing tests, stored directly (the API cannot choose timestamps),
and a brute-force Python twin of the list filters to check the SQL against."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from service.extensions import db
from service.models import UserSession
from service.schemas.fields import parse_datetime

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


def _truthy(params: Mapping[str, str], name: str) -> bool | None:
    return None if name not in params else params[name] == "true"


def expected_uuids(rows: Sequence[Row], params: Sequence[tuple[str, str]], *, now: datetime) -> list[str]:
    """The uuids ``GET /user-sessions`` must list for ``params``, in order, over all pages."""
    single = {name: value for name, value in params if not name.startswith("metadata.")}
    pairs = [(name[len("metadata.") :], value) for name, value in params if name.startswith("metadata.")]

    def bound(name: str) -> datetime | None:
        return parse_datetime(single[name]) if name in single else None

    def matches(row: Row) -> bool:
        live = row.deleted_at is None and (row.expires_at is None or row.expires_at > now)
        deleted = single.get("deleted", "exclude")
        checks = [
            "email" not in single or (row.email is not None and row.email.lower() == single["email"].lower()),
            _truthy(single, "is_email_verified") in (None, row.is_email_verified),
            _truthy(single, "consent_user_data") in (None, row.consent_user_data),
            _truthy(single, "completed") in (None, row.completed_at is not None),
            (after := bound("created_after")) is None or row.created_at > after,
            (before := bound("created_before")) is None or row.created_at < before,
            (after := bound("updated_after")) is None or row.updated_at > after,
            (before := bound("updated_before")) is None or row.updated_at < before,
            deleted == "include" or (live if deleted == "exclude" else not live),
            all(isinstance(row.metadata.get(key), str) and row.metadata[key] == value for key, value in pairs),
        ]
        return all(checks)

    sort = single.get("sort", "-created_at")
    column = sort.lstrip("-")
    chosen = sorted(
        (row for row in rows if matches(row)),
        key=lambda row: (getattr(row, column), row.uuid.int),
        reverse=sort.startswith("-"),
    )
    return [str(row.uuid) for row in chosen]


def list_all(client: Any, params: Sequence[tuple[str, str]], *, limit: int) -> list[str]:
    """Every uuid ``GET /user-sessions`` lists for ``params``, following the tokens.

    Checks the paging contract on the way: every page but the last holds
    exactly ``limit`` items and a ``Link`` to the next; the last has neither.
    """
    uuids: list[str] = []
    token: str | None = None
    for _ in range(1_000):
        query = [*params, ("limit", str(limit))] + ([("page_token", token)] if token else [])
        response = client.get("/user-sessions", query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        uuids.extend(item["uuid"] for item in body["items"])
        token = body["next_page_token"]
        if token is None:
            assert len(body["items"]) <= limit
            assert "Link" not in response.headers
            return uuids
        assert len(body["items"]) == limit
        assert response.headers["Link"].endswith('>; rel="next"')
    raise AssertionError("the listing never ended")
