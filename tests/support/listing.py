"""A brute-force Python twin of the list filters, to check the SQL against, and a
client that follows the page tokens to the end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from service.schemas.fields import parse_datetime
from tests.factories import Row


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
