"""``ListQuery`` on its own, and the rows it reads, on every test database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from marshmallow import Schema

from service.database import get_db_session, utcnow
from service.models import UserSession
from service.repositories import Keyset, get_user_session_repository
from service.schemas.user_sessions import UserSessionSchema
from tests.factories import full_user_session, store_user_session

pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def stored() -> list[UserSession]:
    """Five sessions a second apart, the last two at the same instant."""
    start = utcnow() - timedelta(days=1)
    moments = [start, start + timedelta(seconds=1), start + timedelta(seconds=2)] + [start + timedelta(seconds=3)] * 2
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        made = [repository.create(UserSession(created_at=moment, updated_at=moment)) for moment in moments]
    return sorted(made, key=lambda user_session: (user_session.created_at, user_session.uuid))


def test_each_step_returns_a_new_query_and_leaves_the_old_one_alone() -> None:
    base = get_user_session_repository().query()
    narrowed = base.where(UserSession.name == "x")
    assert base.criteria == ()
    assert len(narrowed.criteria) == 1
    assert base.limit(3).row_limit == 3
    assert base.row_limit is None


def test_pages_walk_both_directions_with_ties_broken_by_the_primary_key(stored: list[UserSession]) -> None:
    query = get_user_session_repository().query()
    for descending in (False, True):
        expected = [user_session.uuid for user_session in (stored[::-1] if descending else stored)]
        ordered = query.order_by(UserSession.created_at, descending=descending).limit(2)
        seen: list[uuid.UUID] = []
        keyset: Keyset | None = None
        while True:
            page = ordered.after(keyset).page()
            seen.extend(user_session.uuid for user_session in page.items)
            keyset = page.next_keyset
            if keyset is None:
                break
        assert seen == expected


def test_without_a_sort_column_the_primary_key_orders_alone(stored: list[UserSession]) -> None:
    page = get_user_session_repository().query().limit(2).page()
    assert [user_session.uuid for user_session in page.items] == sorted(s.uuid for s in stored)[:2]
    assert page.next_keyset == Keyset((sorted(s.uuid for s in stored)[1],))


def test_count_ignores_the_cursor_and_the_limit(stored: list[UserSession]) -> None:
    query = get_user_session_repository().query().order_by(UserSession.created_at).limit(1)
    page = query.after(query.keyset_of(stored[2])).page(with_count=True)
    assert [row.uuid for row in page.items] == [stored[3].uuid]
    assert page.total_count == 5
    assert query.where(UserSession.created_at > stored[2].created_at).count() == 2


def test_the_last_page_says_so_even_when_it_is_full(stored: list[UserSession]) -> None:
    page = get_user_session_repository().query().order_by(UserSession.created_at).limit(5).page()
    assert len(page.items) == 5
    assert page.next_keyset is None


def test_misuse_is_refused() -> None:
    query = get_user_session_repository().query().order_by(UserSession.created_at)
    with pytest.raises(ValueError, match="at least one"):
        query.limit(0)
    with pytest.raises(ValueError, match="needs a limit"):
        query.page()
    with pytest.raises(ValueError, match="2 values"):
        query.after(Keyset((utcnow(),))).limit(1).page()


def test_rows_read_like_instances_without_tracking_them() -> None:
    stored = store_user_session(name="row", metadata_={"k": "v"})
    page = get_user_session_repository().query().limit(5).page()
    (row,) = page.items
    assert not isinstance(row, UserSession)
    assert (row.uuid, row.name, row.metadata_, row.version) == (stored.uuid, "row", {"k": "v"}, 1)
    assert row.created_at == stored.created_at


def test_a_row_dumps_like_the_instance() -> None:
    stored = store_user_session(full_user_session(deleted_at=None, expires_at=None))
    (row,) = get_user_session_repository().query().limit(5).page().items
    assert UserSessionSchema().dump([row], many=True) == [Schema.dump(UserSessionSchema(), stored)]
