"""The first-party client's conversation items against a real gunicorn on PostgreSQL.

Lost answers and canned answers come from :class:`tests.contract.proxy.LossyProxy`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.contract.conftest import RecordedSleep
from tests.contract.proxy import FORWARD, LOSE_ANSWER, LossyProxy
from tests.contract.test_client import http_response
from user_sessions_client import (
    Conflict,
    ConversationItem,
    InvalidRequest,
    ItemNotFound,
    NotFound,
    UserSessionsClient,
)

pytestmark = pytest.mark.slow


def said(role: str, text: str) -> dict[str, Any]:
    """An item as an agent SDK keeps a message: the whole message is the content."""
    return {"role": role, "content": {"role": role, "content": text}}


def contents(items: list[ConversationItem]) -> list[Any]:
    return [item["content"] for item in items]


def test_appends_lists_reads_pops_deletes_and_clears(sessions: UserSessionsClient) -> None:
    user_session = sessions.create()
    stored = sessions.append_items(user_session, [said("user", "Hi"), said("assistant", "Hello")])
    assert [item["seq"] for item in stored] == [1, 2]
    assert [(item["type"], item["role"]) for item in stored] == [("message", "user"), ("message", "assistant")]
    assert contents(stored) == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]

    call = {"type": "function_call", "content": {"type": "function_call", "name": "search", "arguments": "{}"}}
    (stored_call,) = sessions.append_items(user_session, [call])
    assert stored_call["seq"] == 3
    assert stored_call["role"] is None

    assert list(sessions.iter_items(user_session)) == [*stored, stored_call]
    assert list(sessions.iter_items(user_session, order="desc")) == [stored_call, *reversed(stored)]
    assert sessions.get_item(user_session, stored[0]["id"]) == stored[0]

    assert sessions.pop_item(user_session) == stored_call
    sessions.delete_item(user_session, stored[0])
    with pytest.raises(ItemNotFound) as missing:
        sessions.get_item(user_session, stored[0])
    assert missing.value.code == "ITEM_NOT_FOUND"
    assert isinstance(missing.value, NotFound)
    assert list(sessions.iter_items(user_session)) == [stored[1]]

    sessions.clear_items(user_session)
    assert list(sessions.iter_items(user_session)) == []
    assert sessions.get(user_session) == user_session  # items never change the session


def test_iter_items_follows_page_tokens_in_either_order_with_filters(sessions: UserSessionsClient) -> None:
    user_session = sessions.create()
    sessions.append_items(user_session, [said("user" if n % 2 else "assistant", str(n)) for n in range(7)])
    asc = list(sessions.iter_items(user_session, page_size=2))
    assert [item["seq"] for item in asc] == [1, 2, 3, 4, 5, 6, 7]
    desc = list(sessions.iter_items(user_session, order="desc", page_size=3))
    assert desc == list(reversed(asc))
    users = list(sessions.iter_items(user_session, role="user", page_size=2))
    assert [item["seq"] for item in users] == [2, 4, 6]
    assert list(sessions.iter_items(user_session, type="function_call")) == []

    newest = sessions.list_items_page(user_session, order="desc", limit=2)
    assert [item["seq"] for item in newest["items"]] == [7, 6]
    assert newest["next_page_token"]
    with pytest.raises(InvalidRequest) as elsewhere:
        sessions.list_items_page(user_session, order="asc", limit=2, page_token=newest["next_page_token"])
    assert elsewhere.value.status == 400


def test_iter_items_sends_the_same_order_and_filters_with_every_page_token(
    proxy: LossyProxy, proxied: UserSessionsClient
) -> None:
    first = http_response(200, {"items": [{"seq": 9}, {"seq": 8}], "next_page_token": "t1"})
    second = http_response(200, {"items": [{"seq": 7}], "next_page_token": None})
    proxy.expect([first, second])
    user_session = str(uuid.uuid4())
    found = list(proxied.iter_items(user_session, order="desc", type="message", role="user", page_size=2))
    assert [item["seq"] for item in found] == [9, 8, 7]
    assert {urlsplit(seen.path).path for seen in proxy.seen} == {f"/user-sessions/{user_session}/items"}
    queries = [parse_qs(urlsplit(seen.path).query) for seen in proxy.seen]
    query = {"order": ["desc"], "type": ["message"], "role": ["user"], "limit": ["2"]}
    assert queries == [query, {**query, "page_token": ["t1"]}]


def test_pop_of_an_empty_history_is_none_and_of_a_missing_session_not_found(sessions: UserSessionsClient) -> None:
    user_session = sessions.create()
    assert sessions.pop_item(user_session) is None
    with pytest.raises(NotFound) as missing:
        sessions.pop_item(str(uuid.uuid4()))
    assert missing.value.code == "USER_SESSION_NOT_FOUND"
    assert not isinstance(missing.value, ItemNotFound)

    sessions.delete(user_session)
    for call in (
        lambda: sessions.append_items(user_session, [said("user", "Hi")]),
        lambda: list(sessions.iter_items(user_session)),
        lambda: sessions.clear_items(user_session),
    ):
        with pytest.raises(NotFound) as deleted:
            call()
        assert deleted.value.code == "USER_SESSION_NOT_FOUND"


def test_append_failures_name_the_item_and_store_nothing(sessions: UserSessionsClient) -> None:
    user_session = sessions.create()
    with pytest.raises(InvalidRequest) as invalid:
        sessions.append_items(user_session, [said("user", "fine"), {"content": 1, "colour": "blue"}])  # type: ignore[list-item]
    assert invalid.value.status == 422
    assert "items.1.colour" in invalid.value.errors
    with pytest.raises(InvalidRequest):
        sessions.append_items(user_session, [])
    (stored,) = sessions.append_items(user_session, [{"id": uuid.uuid4(), "content": "once"}])
    with pytest.raises(Conflict):
        sessions.append_items(user_session, [{"content": "new"}, {"id": stored["id"], "content": "again"}])
    assert contents(list(sessions.iter_items(user_session))) == ["once"]


def test_a_lost_answer_to_an_append_stores_the_items_once(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient
) -> None:
    user_session = sessions.create()
    proxy.expect([LOSE_ANSWER, FORWARD])
    stored = proxied.append_items(user_session, [said("user", "Hi"), said("assistant", "Hello")])
    first, retry = proxy.seen
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    assert list(sessions.iter_items(user_session)) == stored
    assert [item["seq"] for item in stored] == [1, 2]


def test_a_lost_answer_to_a_pop_removes_one_item_and_returns_it(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient
) -> None:
    user_session = sessions.create()
    older, newest = sessions.append_items(user_session, [said("user", "Hi"), said("assistant", "Hello")])
    proxy.expect([LOSE_ANSWER, FORWARD])
    assert proxied.pop_item(user_session) == newest
    first, retry = proxy.seen
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    assert list(sessions.iter_items(user_session)) == [older]


def test_a_lost_answer_to_an_item_delete_is_done_not_item_not_found(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient
) -> None:
    user_session = sessions.create()
    (item,) = sessions.append_items(user_session, [said("user", "Hi")])
    proxy.expect([LOSE_ANSWER, FORWARD])
    proxied.delete_item(user_session, item)
    assert [seen.method for seen in proxy.seen] == ["DELETE", "DELETE"]
    assert list(sessions.iter_items(user_session)) == []
    # Asked once, with no earlier attempt, a missing item is still an error.
    with pytest.raises(ItemNotFound):
        sessions.delete_item(user_session, item)


def test_an_append_whose_key_is_in_flight_is_retried_with_the_same_key(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    user_session = sessions.create()
    in_use = http_response(409, {"code": "IDEMPOTENCY_KEY_IN_USE", "status": 409}, Retry_After="1")
    proxy.expect([in_use, FORWARD])
    stored = proxied.append_items(user_session, [said("user", "Hi")], idempotency_key="agent-turn-1")
    assert [seen.headers["idempotency-key"] for seen in proxy.seen] == ["agent-turn-1"] * 2
    assert sleep.delays and sleep.delays[0] >= 1
    # The same key later replays the first append rather than storing it again.
    assert sessions.append_items(user_session, [said("user", "Hi")], idempotency_key="agent-turn-1") == stored
    assert len(list(sessions.iter_items(user_session))) == 1


@pytest.mark.parametrize("given_as", ["dict", "str", "UUID"])
def test_every_items_method_takes_the_session_and_the_item_or_their_ids(
    sessions: UserSessionsClient, given_as: str
) -> None:
    def ref(thing: Any, key: str) -> Any:
        return {"dict": thing, "str": thing[key], "UUID": uuid.UUID(thing[key])}[given_as]

    user_session = sessions.create()
    first, second, third = sessions.append_items(ref(user_session, "uuid"), (said("user", str(n)) for n in range(3)))
    assert sessions.get_item(ref(user_session, "uuid"), ref(first, "id")) == first
    sessions.delete_item(ref(user_session, "uuid"), ref(second, "id"))
    assert sessions.pop_item(ref(user_session, "uuid")) == third
    assert list(sessions.iter_items(ref(user_session, "uuid"))) == [first]
    sessions.clear_items(ref(user_session, "uuid"))
    assert sessions.list_items_page(ref(user_session, "uuid")) == {"items": [], "next_page_token": None}
