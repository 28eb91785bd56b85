"""Conversation items (``/user-sessions/{uuid}/items``) through the API, on every test database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from service.database import utcnow
from service.extensions import db
from service.models import ConversationItem
from service.repositories import changes
from tests.conftest import make_app
from tests.support.problems import assert_problem, field_errors
from tests.support.stored_state import idempotency_records, set_user_session, stored_user_session

SESSION_DATA_HEADERS = {"Cache-Control": "private, no-cache", "Vary": "Authorization, X-API-Key"}
CONTENTS: list[Any] = [
    {"role": "user", "content": "Hi"},
    {"type": "function_call", "arguments": '{"q": "weather"}', "nested": {"a": [1, 2.5, None, True]}},
    "plain text",
    42,
    -1.5,
    True,
    None,
    [],
    [{"a": 1}],
    [[1, 2], [3], []],
    [1, [2, [3, {"four": [4]}]], "five"],
    [{"(v\u00de": -5942}],
    {},
    {"ünïcødé": "日本語 🎉", "big": 12345678901234567890},
]


def items_url(user_session_uuid: str, suffix: str = "") -> str:
    return f"/user-sessions/{user_session_uuid}/items{suffix}"


def append(client: FlaskClient, user_session_uuid: str, *items: dict[str, Any], **kwargs: Any) -> TestResponse:
    return client.post(items_url(user_session_uuid), json={"items": list(items)}, **kwargs)


def appended(client: FlaskClient, user_session_uuid: str, *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = append(client, user_session_uuid, *items)
    assert response.status_code == 201, response.get_json()
    stored: list[dict[str, Any]] = response.get_json()["items"]
    return stored


def listed(client: FlaskClient, user_session_uuid: str, **query: Any) -> dict[str, Any]:
    response = client.get(items_url(user_session_uuid), query_string=query)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def seqs(items: list[dict[str, Any]]) -> list[int]:
    return [item["seq"] for item in items]


def stored_item_count(app: Flask, user_session_uuid: str | None = None) -> int:
    with app.app_context():
        query = select(func.count()).select_from(ConversationItem)
        if user_session_uuid is not None:
            query = query.where(ConversationItem.user_session_uuid == uuid.UUID(user_session_uuid))
        count = int(db.session.scalar(query) or 0)
        db.session.rollback()
        return count


@pytest.fixture
def user_session(create_session: Callable[..., dict[str, Any]]) -> str:
    user_session_uuid: str = create_session(name="Ada")["uuid"]
    return user_session_uuid


# --- append ---------------------------------------------------------------------


def test_an_append_stores_the_items_in_order_and_answers_them_as_stored(client: FlaskClient, user_session: str) -> None:
    response = append(client, user_session, *({"content": content} for content in CONTENTS))
    assert response.status_code == 201
    items = response.get_json()["items"]
    assert seqs(items) == list(range(1, len(CONTENTS) + 1))
    assert [item["content"] for item in items] == CONTENTS
    assert {item["type"] for item in items} == {"message"}
    assert {item["role"] for item in items} == {None}
    assert all(item.keys() == {"id", "seq", "type", "role", "content", "created_at"} for item in items)
    assert len({item["id"] for item in items}) == len(items)
    assert listed(client, user_session)["items"] == items
    for header, value in SESSION_DATA_HEADERS.items():
        assert response.headers[header] == value


def test_an_item_keeps_the_id_type_and_role_it_was_sent_with(client: FlaskClient, user_session: str) -> None:
    chosen = str(uuid.uuid4())
    item = {"id": chosen, "type": "function_call_output", "role": "tool", "content": {"output": "sunny"}}
    (stored,) = appended(client, user_session, item)
    assert {key: stored[key] for key in item} == item
    read = client.get(items_url(user_session, f"/{chosen}"))
    assert read.status_code == 200
    assert read.get_json() == stored


def test_each_append_continues_from_the_highest_seq_the_session_ever_gave(
    client: FlaskClient, user_session: str
) -> None:
    first = appended(client, user_session, {"content": 1}, {"content": 2}, {"content": 3})
    assert client.post(items_url(user_session, "/pop")).get_json()["seq"] == 3
    assert seqs(appended(client, user_session, {"content": 4})) == [4]
    assert client.delete(items_url(user_session, f"/{first[1]['id']}")).status_code == 204
    assert client.delete(items_url(user_session)).status_code == 204
    assert seqs(appended(client, user_session, {"content": 5}, {"content": 6})) == [5, 6]
    assert seqs(listed(client, user_session)["items"]) == [5, 6]


def test_items_change_nothing_of_the_session(client: FlaskClient, app: Flask, user_session: str) -> None:
    before = client.get(f"/user-sessions/{user_session}")
    (item,) = appended(client, user_session, {"content": "hello"})
    appended(client, user_session, {"content": "again"})
    client.post(items_url(user_session, "/pop"))
    client.delete(items_url(user_session, f"/{item['id']}"))
    client.delete(items_url(user_session))
    after = client.get(f"/user-sessions/{user_session}")
    assert after.headers["ETag"] == before.headers["ETag"] == '"1"'
    assert after.get_json() == before.get_json()
    assert "last_item_seq" not in after.get_json()
    assert stored_user_session(app, user_session)["last_item_seq"] == 2


def test_item_writes_tell_no_change_of_the_session_to_the_cache(client: FlaskClient, user_session: str) -> None:
    told: list[changes.Changes] = []
    changes.listen(told.append)
    try:
        appended(client, user_session, {"content": 1}, {"content": 2})
        client.post(items_url(user_session, "/pop"))
        client.delete(items_url(user_session))
    finally:
        changes._listeners.remove(told.append)
    assert told == []


def test_an_append_takes_a_body_up_to_one_mebibyte(client: FlaskClient, user_session: str) -> None:
    # 15 items of about 60 KB: far over the 64 KiB other bodies may have.
    response = append(client, user_session, *({"content": "x" * 60_000} for _ in range(15)))
    assert response.status_code == 201
    too_large = append(client, user_session, *({"content": "x" * 60_000} for _ in range(18)))
    body = assert_problem(too_large, 413, "PAYLOAD_TOO_LARGE")
    assert "1024 KiB" in body["detail"]
    assert len(listed(client, user_session)["items"]) == 15


def test_other_routes_keep_the_64_kib_limit(client: FlaskClient, user_session: str) -> None:
    response = client.post("/user-sessions", json={"name": "x" * 70_000})
    assert "64 KiB" in assert_problem(response, 413, "PAYLOAD_TOO_LARGE")["detail"]
    response = client.patch(
        f"/user-sessions/{user_session}", json={"metadata": {"a": "x" * 70_000}}, content_type="application/json"
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": [{"content": index} for index in range(101)]}, "items"),
        ({"items": {"content": 1}}, "items"),
        ({"items": [{"content": 1}], "extra": True}, "extra"),
        ({"items": [{"content": 1}, {"content": 2}, {"content": 3}, {"content": 4, "foo": 1}]}, "items.3.foo"),
        ({"items": [{"content": 1}, {"role": "user"}]}, "items.1.content"),
        ({"items": [{"content": "x" * (64 * 1024)}]}, "items.0.content"),
        ({"items": [{"content": 1, "type": "Message"}]}, "items.0.type"),
        ({"items": [{"content": 1, "type": ""}]}, "items.0.type"),
        ({"items": [{"content": 1, "type": "x" * 65}]}, "items.0.type"),
        ({"items": [{"content": 1, "role": "r" * 65}]}, "items.0.role"),
        ({"items": [{"content": 1, "role": 7}]}, "items.0.role"),
        ({"items": [{"content": 1, "id": "not-a-uuid"}]}, "items.0.id"),
        ({"items": [{"content": 1, "seq": 9}]}, "items.0.seq"),
        ({"items": [{"content": 1, "created_at": "2026-01-01T00:00:00Z"}]}, "items.0.created_at"),
        ({"items": [{"content": 1}, {"content": {"text": "nul \u0000 here"}}]}, "items.1.content"),
        ({"items": ["just a string"]}, "items.0"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_an_invalid_append_is_a_422_naming_the_field(
    client: FlaskClient, app: Flask, user_session: str, body: dict[str, Any], field: str
) -> None:
    response = client.post(items_url(user_session), json=body)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert field in field_errors(response), field_errors(response)
    assert stored_item_count(app) == 0


def test_an_id_sent_twice_in_one_batch_is_a_422_naming_the_second(client: FlaskClient, user_session: str) -> None:
    chosen = str(uuid.uuid4())
    response = append(client, user_session, {"id": chosen, "content": 1}, {"content": 2}, {"id": chosen, "content": 3})
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert list(field_errors(response)) == ["items.2.id"]


def test_an_id_that_exists_is_a_409_and_nothing_of_the_batch_is_stored(
    client: FlaskClient, app: Flask, create_session: Callable[..., dict[str, Any]], user_session: str
) -> None:
    (existing,) = appended(client, user_session, {"content": "first"})
    other = create_session()["uuid"]
    for target in (user_session, other):
        response = append(client, target, {"content": "new"}, {"id": existing["id"], "content": "again"})
        assert_problem(response, 409, "ITEM_ALREADY_EXISTS")
    assert stored_item_count(app) == 1
    # The seqs a refused batch would have taken are not used up either.
    assert seqs(appended(client, user_session, {"content": "next"})) == [2]


def test_a_body_that_is_not_json_or_not_sent_as_json_is_refused(client: FlaskClient, user_session: str) -> None:
    assert_problem(
        client.post(items_url(user_session), data="{", content_type="application/json"), 400, "MALFORMED_JSON"
    )
    assert_problem(
        client.post(items_url(user_session), data='{"items": [], "items": []}', content_type="application/json"),
        400,
        "MALFORMED_JSON",
    )
    assert_problem(
        client.post(items_url(user_session), data='{"items": []}', content_type="text/plain"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )


# --- list -------------------------------------------------------------------------


def test_the_list_is_oldest_first_by_default_and_newest_first_with_order_desc(
    client: FlaskClient, user_session: str
) -> None:
    appended(client, user_session, *({"content": index} for index in range(1, 8)))
    assert seqs(listed(client, user_session)["items"]) == [1, 2, 3, 4, 5, 6, 7]
    newest = listed(client, user_session, order="desc", limit=3)
    assert seqs(newest["items"]) == [7, 6, 5]
    assert newest["next_page_token"] is not None


def list_all(client: FlaskClient, user_session_uuid: str, *, limit: int, **query: Any) -> list[int]:
    """Every seq the listing gives, following its tokens, checking every page."""
    found: list[int] = []
    token = None
    for _ in range(100):
        params = {**query, "limit": limit, **({"page_token": token} if token else {})}
        response = client.get(items_url(user_session_uuid), query_string=params)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        found.extend(seqs(body["items"]))
        token = body["next_page_token"]
        if token is None:
            assert len(body["items"]) <= limit
            assert "Link" not in response.headers
            return found
        assert len(body["items"]) == limit
        assert response.headers["Link"].endswith('>; rel="next"')
    raise AssertionError("the listing never ended")


@pytest.mark.parametrize("limit", [1, 2, 3, 9, 10, 500])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_page_tokens_walk_the_whole_history_once(
    client: FlaskClient, user_session: str, limit: int, order: str
) -> None:
    appended(client, user_session, *({"content": index} for index in range(9)))
    expected = list(range(1, 10))
    assert list_all(client, user_session, limit=limit, order=order) == (expected if order == "asc" else expected[::-1])


def test_type_and_role_filter_exactly_and_page_with_their_tokens(client: FlaskClient, user_session: str) -> None:
    items = [
        {"content": 1, "role": "user"},
        {"content": 2, "role": "assistant"},
        {"content": 3, "type": "function_call"},
        {"content": 4, "role": "user"},
        {"content": 5, "role": "User"},
        {"content": 6, "type": "function_call", "role": "assistant"},
        {"content": 7, "role": "user"},
    ]
    appended(client, user_session, *items)
    assert list_all(client, user_session, limit=2, role="user") == [1, 4, 7]
    assert list_all(client, user_session, limit=1, type="function_call", order="desc") == [6, 3]
    assert list_all(client, user_session, limit=5, type="message", role="assistant") == [2]
    assert list_all(client, user_session, limit=5, type="reasoning") == []


def test_a_page_token_is_bound_to_its_session_order_and_filters(
    client: FlaskClient, create_session: Callable[..., dict[str, Any]], user_session: str
) -> None:
    other = create_session()["uuid"]
    for target in (user_session, other):
        appended(client, target, *({"content": index, "role": "user"} for index in range(5)))
    token = listed(client, user_session, limit=2, role="user")["next_page_token"]
    assert seqs(listed(client, user_session, limit=3, role="user", page_token=token)["items"]) == [3, 4, 5]
    for target, query in (
        (other, {"role": "user"}),
        (user_session, {"role": "user", "order": "desc"}),
        (user_session, {}),
        (user_session, {"role": "user", "type": "message"}),
    ):
        response = client.get(items_url(target), query_string={**query, "page_token": token})
        assert_problem(response, 400, "INVALID_QUERY_PARAMETER")
        assert "page_token" in field_errors(response)
    session_list_token = client.get("/user-sessions", query_string={"limit": 1}).get_json()["next_page_token"]
    for forged in (token[:-2] + "xx", "nonsense", session_list_token):
        response = client.get(items_url(user_session), query_string={"role": "user", "page_token": forged})
        assert_problem(response, 400, "INVALID_QUERY_PARAMETER")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("order=newest", "order"),
        ("order=DESC", "order"),
        ("type=Bad%20Type", "type"),
        ("role=", "role"),
        ("sort=seq", "sort"),
        ("after=3", "after"),
        ("limit=5&limit=6", "limit"),
        ("role=%00", "role"),
    ],
)
def test_a_bad_list_query_is_a_400_naming_the_parameter(
    client: FlaskClient, user_session: str, query: str, parameter: str
) -> None:
    response = client.get(f"{items_url(user_session)}?{query}")
    assert_problem(response, 400, "INVALID_QUERY_PARAMETER")
    assert parameter in field_errors(response)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("post", "/pop?x=1"),
        ("delete", "?purge=true"),
        ("post", "?x=1"),
    ],
)
def test_operations_without_parameters_refuse_any(
    client: FlaskClient, user_session: str, method: str, suffix: str
) -> None:
    kwargs = {"json": {"items": [{"content": 1}]}} if method == "post" and "pop" not in suffix else {}
    response = getattr(client, method)(items_url(user_session, suffix), **kwargs)
    assert_problem(response, 400, "INVALID_QUERY_PARAMETER")


# --- one item, pop, clear ------------------------------------------------------------------


def test_an_item_is_read_and_deleted_by_its_id(client: FlaskClient, user_session: str) -> None:
    first, second = appended(client, user_session, {"content": "a"}, {"content": "b"})
    response = client.get(items_url(user_session, f"/{second['id'].upper()}"))
    assert response.status_code == 200
    assert response.get_json() == second
    for header, value in SESSION_DATA_HEADERS.items():
        assert response.headers[header] == value
    deleted = client.delete(items_url(user_session, f"/{first['id']}"))
    assert deleted.status_code == 204
    assert deleted.get_data() == b""
    assert_problem(client.get(items_url(user_session, f"/{first['id']}")), 404, "ITEM_NOT_FOUND")
    assert_problem(client.delete(items_url(user_session, f"/{first['id']}")), 404, "ITEM_NOT_FOUND")
    assert seqs(listed(client, user_session)["items"]) == [2]


def test_an_item_is_found_only_under_its_own_session(
    client: FlaskClient, create_session: Callable[..., dict[str, Any]], user_session: str
) -> None:
    (item,) = appended(client, user_session, {"content": "mine"})
    other = create_session()["uuid"]
    assert_problem(client.get(items_url(other, f"/{item['id']}")), 404, "ITEM_NOT_FOUND")
    assert_problem(client.delete(items_url(other, f"/{item['id']}")), 404, "ITEM_NOT_FOUND")
    assert client.get(items_url(user_session, f"/{item['id']}")).status_code == 200


@pytest.mark.parametrize("item_id", ["5f0c6a52-8a1e-4b0e-9f43-0b9d8a4c2e11", "not-a-uuid", "popped"])
def test_an_unknown_or_malformed_item_id_is_item_not_found(
    client: FlaskClient, user_session: str, item_id: str
) -> None:
    appended(client, user_session, {"content": 1})
    assert_problem(client.get(items_url(user_session, f"/{item_id}")), 404, "ITEM_NOT_FOUND")
    assert_problem(client.delete(items_url(user_session, f"/{item_id}")), 404, "ITEM_NOT_FOUND")


def test_pop_is_a_path_of_its_own_that_only_posts(client: FlaskClient, user_session: str) -> None:
    for method in ("get", "delete"):
        response = getattr(client, method)(items_url(user_session, "/pop"))
        assert_problem(response, 405, "METHOD_NOT_ALLOWED")
        assert set(response.headers["Allow"].split(", ")) == {"POST"}


def test_pop_removes_and_returns_the_newest_item_until_none_is_left(client: FlaskClient, user_session: str) -> None:
    stored = appended(client, user_session, {"content": "a"}, {"content": "b"}, {"content": "c"})
    popped = [client.post(items_url(user_session, "/pop")) for _ in range(3)]
    assert [response.status_code for response in popped] == [200, 200, 200]
    assert [response.get_json() for response in popped] == stored[::-1]
    assert popped[0].headers["Cache-Control"] == SESSION_DATA_HEADERS["Cache-Control"]
    body = assert_problem(client.post(items_url(user_session, "/pop")), 404, "ITEM_NOT_FOUND")
    assert "no items" in body["detail"]


def test_clear_removes_every_item_and_the_session_stays(
    client: FlaskClient, app: Flask, create_session: Callable[..., dict[str, Any]], user_session: str
) -> None:
    other = create_session()["uuid"]
    appended(client, user_session, *({"content": index} for index in range(5)))
    appended(client, other, {"content": "kept"})
    response = client.delete(items_url(user_session))
    assert response.status_code == 204
    assert "Content-Type" not in response.headers
    assert listed(client, user_session) == {"items": [], "next_page_token": None}
    assert client.delete(items_url(user_session)).status_code == 204  # nothing to clear: still done
    assert client.get(f"/user-sessions/{user_session}").status_code == 200
    assert stored_item_count(app, other) == 1


# --- the session's life -------------------------------------------------------------


def every_items_request(user_session_uuid: str, item_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("post", items_url(user_session_uuid), {"json": {"items": [{"content": 1}]}}),
        ("get", items_url(user_session_uuid), {}),
        ("get", items_url(user_session_uuid, f"/{item_id}"), {}),
        ("delete", items_url(user_session_uuid, f"/{item_id}"), {}),
        ("post", items_url(user_session_uuid, "/pop"), {}),
        ("delete", items_url(user_session_uuid), {}),
    ]


def assert_every_request_finds_no_session(client: FlaskClient, user_session_uuid: str, item_id: str) -> None:
    for method, url, kwargs in every_items_request(user_session_uuid, item_id):
        response = getattr(client, method)(url, **kwargs)
        assert_problem(response, 404, "USER_SESSION_NOT_FOUND")


@pytest.mark.parametrize("user_session_uuid", ["8d3f1b7e-2c4a-4e6f-9a1b-3c5d7e9f0a2b", "not-a-uuid", "0" * 36])
def test_every_items_request_on_a_missing_session_is_user_session_not_found(
    client: FlaskClient, user_session_uuid: str
) -> None:
    assert_every_request_finds_no_session(client, user_session_uuid, str(uuid.uuid4()))


def test_soft_delete_hides_the_items_and_restore_brings_them_back(
    client: FlaskClient, app: Flask, user_session: str
) -> None:
    stored = appended(client, user_session, {"content": "a"}, {"content": "b"})
    assert client.delete(f"/user-sessions/{user_session}").status_code == 204
    assert_every_request_finds_no_session(client, user_session, stored[0]["id"])
    assert stored_item_count(app, user_session) == 2
    assert client.post(f"/user-sessions/{user_session}/restore").status_code == 200
    assert listed(client, user_session)["items"] == stored
    assert seqs(appended(client, user_session, {"content": "c"})) == [3]


def test_an_expired_session_hides_its_items_until_restored(client: FlaskClient, app: Flask, user_session: str) -> None:
    stored = appended(client, user_session, {"content": "a"})
    set_user_session(app, user_session, expires_at=utcnow() - timedelta(seconds=1))
    assert_every_request_finds_no_session(client, user_session, stored[0]["id"])
    assert client.post(f"/user-sessions/{user_session}/restore").status_code == 200
    assert listed(client, user_session)["items"] == stored


def test_purge_erases_the_items_and_the_idempotency_records_that_hold_them(
    client: FlaskClient, app: Flask, create_session: Callable[..., dict[str, Any]], user_session: str
) -> None:
    other = create_session()["uuid"]
    stored = appended(client, user_session, {"content": "secret"}, {"content": "more"})
    append(client, user_session, {"content": "kept by a key"}, headers={"Idempotency-Key": "append-1"})
    client.post(items_url(user_session, "/pop"), headers={"Idempotency-Key": "pop-1"})
    append(client, other, {"content": "other"}, headers={"Idempotency-Key": "append-1"})
    assert len(idempotency_records(app)) == 3
    assert client.delete(f"/user-sessions/{user_session}?purge=true").status_code == 204
    assert stored_item_count(app, user_session) == 0
    assert stored_item_count(app, other) == 1
    assert [record["path"] for record in idempotency_records(app)] == [items_url(other)]
    assert_every_request_finds_no_session(client, user_session, stored[0]["id"])


def test_a_purged_uuid_created_again_starts_an_empty_history(
    client: FlaskClient, create_session: Callable[..., dict[str, Any]], user_session: str
) -> None:
    appended(client, user_session, {"content": "old"}, {"content": "older"})
    assert client.delete(f"/user-sessions/{user_session}?purge=true").status_code == 204
    create_session(uuid=user_session)
    assert listed(client, user_session)["items"] == []
    assert seqs(appended(client, user_session, {"content": "new"})) == [1]


# --- idempotency ----------------------------------------------------------------------


def test_a_retried_append_replays_its_answer_and_stores_the_items_once(
    client: FlaskClient, app: Flask, user_session: str
) -> None:
    headers = {"Idempotency-Key": "append-once"}
    first = append(client, user_session, {"content": "a"}, {"content": "b"}, headers=headers)
    retry = append(client, user_session, {"content": "a"}, {"content": "b"}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    assert stored_item_count(app, user_session) == 2
    reused = append(client, user_session, {"content": "other"}, headers=headers)
    assert_problem(reused, 422, "IDEMPOTENCY_KEY_REUSED")


def test_a_retried_pop_replays_the_item_it_removed(client: FlaskClient, app: Flask, user_session: str) -> None:
    appended(client, user_session, {"content": "a"}, {"content": "b"})
    headers = {"Idempotency-Key": "pop-once"}
    first = client.post(items_url(user_session, "/pop"), headers=headers)
    retry = client.post(items_url(user_session, "/pop"), headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert first.get_json()["content"] == "b"
    assert seqs(listed(client, user_session)["items"]) == [1]


def test_a_refused_append_is_remembered_but_an_invalid_one_is_not(
    client: FlaskClient, app: Flask, user_session: str
) -> None:
    (existing,) = appended(client, user_session, {"content": "a"})
    headers = {"Idempotency-Key": "conflict"}
    conflict = append(client, user_session, {"id": existing["id"], "content": "x"}, headers=headers)
    assert_problem(conflict, 409, "ITEM_ALREADY_EXISTS")
    replayed = append(client, user_session, {"id": existing["id"], "content": "x"}, headers=headers)
    assert replayed.status_code == 409
    assert replayed.get_data() == conflict.get_data()  # the first answer, its correlation id included
    assert replayed.headers["Idempotent-Replayed"] == "true"
    invalid_key = {"Idempotency-Key": "invalid"}
    assert client.post(items_url(user_session), json={"items": []}, headers=invalid_key).status_code == 422
    assert append(client, user_session, {"content": "fixed"}, headers=invalid_key).status_code == 201


# --- keys and the rate limit ------------------------------------------------------------------

READ_WRITE_KEY = "rw-items-5d1c0e9a4b7f4e2a9c3d8b6a1f0e"
READ_ONLY_KEY = "ro-items-8f2b6c1d9e3a4f7b0c5d2e8a6b1f"


@pytest.fixture(scope="module")
def secured_app(database_url: str) -> Iterator[Flask]:
    secured = make_app(database_url, API_KEYS=f"{READ_WRITE_KEY},{READ_ONLY_KEY}:ro")
    yield secured
    with secured.app_context():
        db.engine.dispose()


def test_a_read_only_key_may_list_and_read_items_but_change_none(secured_app: Flask, app: Flask) -> None:
    client = secured_app.test_client()
    rw = {"Authorization": f"Bearer {READ_WRITE_KEY}"}
    ro = {"X-API-Key": READ_ONLY_KEY}
    user_session = client.post("/user-sessions", json={}, headers=rw).get_json()["uuid"]
    (item,) = client.post(items_url(user_session), json={"items": [{"content": 1}]}, headers=rw).get_json()["items"]
    assert client.get(items_url(user_session), headers=ro).status_code == 200
    assert client.get(items_url(user_session, f"/{item['id']}"), headers=ro).status_code == 200
    for method, url, kwargs in every_items_request(user_session, item["id"]):
        if method != "get":
            assert_problem(getattr(client, method)(url, headers=ro, **kwargs), 403, "READ_ONLY_API_KEY")
        assert_problem(getattr(client, method)(url, **kwargs), 401, "AUTHENTICATION_REQUIRED")
    assert stored_item_count(app, user_session) == 1


def test_items_requests_count_against_the_rate_limit(
    make_configured_app: Callable[..., Flask], create_session: Callable[..., dict[str, Any]]
) -> None:
    limited = make_configured_app(RATE_LIMIT="3/minute").test_client()
    user_session = create_session()["uuid"]
    assert limited.post(items_url(user_session), json={"items": [{"content": 1}]}).status_code == 201
    assert limited.get(items_url(user_session)).status_code == 200
    assert limited.post(items_url(user_session, "/pop")).status_code == 200
    response = limited.get(items_url(user_session))
    assert_problem(response, 429, "RATE_LIMITED")
    assert int(response.headers["Retry-After"]) >= 1


def test_an_update_that_says_it_changes_nothing_copied_may_set_only_the_items_counter(
    app: Flask, user_session: str
) -> None:
    from sqlalchemy import update

    from service.models import UserSession

    with app.app_context():
        counter_only = (
            update(UserSession)
            .where(UserSession.uuid == uuid.UUID(user_session))
            .values(last_item_seq=UserSession.last_item_seq + 1)
            .execution_options(synchronize_session=False, **changes.NOTHING_COPIED_CHANGES)
        )
        db.session.execute(counter_only)
        sneaky = (
            update(UserSession)
            .where(UserSession.uuid == uuid.UUID(user_session))
            .values(last_item_seq=5, name="changed")
            .execution_options(synchronize_session=False, **changes.NOTHING_COPIED_CHANGES)
        )
        with pytest.raises(changes.UnnotedUserSessionWrite, match="name"):
            db.session.execute(sneaky)
        db.session.rollback()
