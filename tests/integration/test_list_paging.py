"""Listing against a brute-force Python twin: every filter, sort and page size."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import pytest
import requests
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.database import utcnow
from service.schemas.fields import format_datetime
from tests.factories import EMAILS, EPOCH, METADATA_KEYS, Row, random_rows, store_rows
from tests.support.listing import expected_uuids, list_all
from tests.support.live import LiveServer

SORTS = ("-created_at", "created_at", "-updated_at", "updated_at")


@pytest.mark.parametrize("sort", SORTS)
def test_a_traversal_lists_every_row_once_in_order(app: Flask, sort: str) -> None:
    now = utcnow()
    rows = random_rows(random.Random(sort), 61, now=now)
    store_rows(app, rows)
    params = [("sort", sort), ("deleted", "include")]
    listed = list_all(app.test_client(), params, limit=4)
    assert listed == expected_uuids(rows, params, now=now)
    assert len(listed) == 61


@pytest.mark.parametrize("sort", SORTS)
def test_rows_inserted_during_a_traversal_never_repeat_or_hide_an_earlier_row(app: Flask, sort: str) -> None:
    now = utcnow()
    rows = random_rows(random.Random(f"insert{sort}"), 40, now=now)
    store_rows(app, rows)
    client = app.test_client()
    params = [("sort", sort), ("deleted", "include"), ("limit", "3")]
    seen: list[str] = []
    inserted: list[str] = []
    token = None
    while True:
        response = client.get("/user-sessions", query_string=params + ([("page_token", token)] if token else []))
        assert response.status_code == 200
        seen.extend(item["uuid"] for item in response.get_json()["items"])
        token = response.get_json()["next_page_token"]
        if token is None:
            break
        # Another client creates sessions between two pages: both newer and,
        # at the same instant as a seeded row, tied with it.
        created = client.post("/user-sessions", json={"name": "meanwhile"}).get_json()
        inserted.append(created["uuid"])
    assert len(seen) == len(set(seen)), "a row was listed twice"
    original = [uuid for uuid in seen if uuid not in inserted]
    assert original == expected_uuids(rows, [("sort", sort), ("deleted", "include")], now=now)
    if sort.startswith("-"):
        assert not set(seen) & set(inserted)  # newest first: rows made later sit before the cursor
    else:
        assert set(inserted) <= set(seen)  # oldest first: they come after every seeded row


def test_rows_tied_on_the_sort_column_are_ordered_by_uuid_in_the_sort_direction(app: Flask) -> None:
    now = utcnow()
    tied = [
        Row(
            uuid=row.uuid,
            email=None,
            is_email_verified=False,
            consent_user_data=False,
            completed_at=None,
            created_at=EPOCH,
            updated_at=EPOCH,
            expires_at=None,
            deleted_at=None,
            metadata={},
        )
        for row in random_rows(random.Random(7), 9, now=now)
    ]
    store_rows(app, tied)
    ascending = sorted(str(row.uuid) for row in tied)
    client = app.test_client()
    assert list_all(client, [("sort", "created_at")], limit=2) == ascending
    assert list_all(client, [("sort", "-created_at")], limit=2) == ascending[::-1]


def _timestamps() -> list[str]:
    moments = [EPOCH + timedelta(seconds=second, microseconds=micro) for second in range(-1, 20) for micro in (0, 1)]
    return [format_datetime(moment) for moment in moments]


def _query_parameters() -> st.SearchStrategy[list[tuple[str, str]]]:
    booleans = st.sampled_from(("true", "false"))
    single = st.fixed_dictionaries(
        {},
        optional={
            "email": st.sampled_from([email for email in EMAILS if email] + ["nobody@example.com", "ANA@EXAMPLE.COM"]),
            "is_email_verified": booleans,
            "consent_user_data": booleans,
            "completed": booleans,
            "created_after": st.sampled_from(_timestamps()),
            "created_before": st.sampled_from(_timestamps()),
            "updated_after": st.sampled_from(_timestamps()),
            "updated_before": st.sampled_from(_timestamps()),
            "deleted": st.sampled_from(("exclude", "include", "only")),
            "sort": st.sampled_from(SORTS),
        },
    )
    metadata = st.lists(
        st.tuples(
            st.sampled_from(METADATA_KEYS).map(lambda key: f"metadata.{key}"),
            st.sampled_from(("web", "3", "true", "", "null", '{"x": "web"}')),
        ),
        max_size=2,
    )
    return st.builds(lambda one, many: sorted(one.items()) + many, single, metadata)


class TestFiltersAgainstBruteForce:
    """Hypothesis picks filter combinations; Python filters the same rows by hand."""

    @pytest.fixture
    def seeded(self, app: Flask) -> tuple[Flask, list[Row], datetime]:
        now = utcnow()
        rows = random_rows(random.Random(2026), 150, now=now)
        store_rows(app, rows)
        return app, rows, now

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(params=_query_parameters(), limit=st.integers(min_value=1, max_value=60))
    def test_every_filter_combination_lists_what_python_finds(
        self, seeded: tuple[Flask, list[Row], datetime], params: list[tuple[str, str]], limit: int
    ) -> None:
        app, rows, now = seeded
        assert list_all(app.test_client(), params, limit=limit) == expected_uuids(rows, params, now=now)

    def test_the_seed_exercises_every_filter(self, seeded: tuple[Flask, list[Row], datetime]) -> None:
        """Guard against a vacuous property: each filter value selects some rows, not all."""
        app, rows, now = seeded
        for params in (
            [("email", "ana@example.com")],
            [("is_email_verified", "true")],
            [("completed", "false")],
            [("deleted", "only")],
            [("metadata.channel", "web")],
            [("metadata.step", "3")],
            [("created_after", format_datetime(EPOCH + timedelta(seconds=5)))],
        ):
            expected = expected_uuids(rows, params, now=now)
            assert list_all(app.test_client(), params, limit=50) == expected
            assert 0 < len(expected) < len(rows), params


def test_a_token_from_one_worker_is_honoured_by_every_other(live_server: LiveServer) -> None:
    """Page tokens hold no per-process state: any worker or instance with the key continues a listing."""
    run = uuid.uuid4().hex
    made = []
    for _ in range(7):
        response = requests.post(live_server.url("/user-sessions"), json={"metadata": {"run": run}}, timeout=10)
        assert response.status_code == 201
        made.append(response.json()["uuid"])
    seen: list[str] = []
    url = live_server.url(f"/user-sessions?limit=1&sort=created_at&metadata.run={run}")
    while url:
        response = requests.get(url, timeout=10, headers={"Connection": "close"})
        assert response.status_code == 200, response.text
        seen.extend(item["uuid"] for item in response.json()["items"])
        url = live_server.url(response.links["next"]["url"]) if "next" in response.links else ""
    assert seen == made
