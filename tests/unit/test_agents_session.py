"""``UserSessionsAgentSession`` on its own: the Agents SDK's session over a stand-in client (no I/O).

The same session against the real service, driven by ``agents.Runner``, is
tests/contract/test_agents_session.py.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.requirements import require_module
from user_sessions_client import ConversationItem, ConversationItemIn, UserSessionsClient
from user_sessions_client.client import encode_json

require_module("agents", "pip install -e './clients/python[agents]' (openai-agents)")

from agents.memory import Session, SessionABC, SessionSettings  # noqa: E402

from user_sessions_client.agents import UserSessionsAgentSession  # noqa: E402

USER_SESSION = "0b6f8e3c-6d2a-4f6e-9d3b-1f2e3d4c5b6a"


class InMemoryItems(UserSessionsClient):
    """The items methods of the client, kept in a list; remembers which thread each call ran on."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.items: list[ConversationItem] = []
        self.appends: list[list[ConversationItemIn]] = []
        self.pages: list[dict[str, Any]] = []
        self.threads: set[int] = set()

    def append_items(
        self, user_session: Any, items: Any, *, idempotency_key: str | None = None
    ) -> list[ConversationItem]:
        assert user_session == USER_SESSION
        self.threads.add(threading.get_ident())
        batch = list(items)
        self.appends.append(batch)
        stored: list[ConversationItem] = []
        for item in batch:
            seq = len(self.items) + 1
            stored.append(
                {
                    "id": str(uuid.uuid4()),
                    "seq": seq,
                    "type": item.get("type", "message"),
                    "role": item.get("role"),
                    "content": item["content"],
                    "created_at": "2026-12-03T05:00:00.000000Z",
                }
            )
        self.items.extend(stored)
        return stored

    def iter_items(
        self, user_session: Any, *, order: str = "asc", page_size: int = 100, **filters: Any
    ) -> Iterator[ConversationItem]:
        assert user_session == USER_SESSION
        self.threads.add(threading.get_ident())
        ordered = self.items if order == "asc" else list(reversed(self.items))
        for start in range(0, len(ordered), page_size):
            self.pages.append({"order": order, "limit": page_size})
            yield from ordered[start : start + page_size]

    def pop_item(self, user_session: Any, *, idempotency_key: str | None = None) -> ConversationItem | None:
        self.threads.add(threading.get_ident())
        return self.items.pop() if self.items else None

    def clear_items(self, user_session: Any) -> None:
        self.threads.add(threading.get_ident())
        self.items.clear()


def message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": text}


@pytest.fixture
def client() -> InMemoryItems:
    return InMemoryItems()


@pytest.fixture
def memory(client: InMemoryItems) -> UserSessionsAgentSession:
    return UserSessionsAgentSession(session_id=USER_SESSION, client=client)


def test_is_an_agents_sdk_session_named_by_the_user_sessions_uuid(memory: UserSessionsAgentSession) -> None:
    assert isinstance(memory, SessionABC)
    assert isinstance(memory, Session)
    assert memory.session_id == USER_SESSION
    assert UserSessionsAgentSession(session_id=uuid.UUID(USER_SESSION), client=memory.client).session_id == USER_SESSION
    with pytest.raises(ValueError, match="badly formed"):
        UserSessionsAgentSession(session_id="not-a-uuid", client=memory.client)


def test_stores_each_sdk_item_whole_as_content_with_its_type_and_role(
    memory: UserSessionsAgentSession, client: InMemoryItems
) -> None:
    user = message("user", "Hi")
    reply = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
    }
    call = {"type": "function_call", "call_id": "c1", "name": "search", "arguments": "{}"}
    asyncio.run(memory.add_items([user, reply, call]))  # type: ignore[list-item]
    assert client.appends == [
        [
            {"content": user, "type": "message", "role": "user"},
            {"content": reply, "type": "message", "role": "assistant"},
            {"content": call, "type": "function_call"},
        ]
    ]
    assert asyncio.run(memory.get_items()) == [user, reply, call]


def test_get_items_returns_the_newest_limit_items_oldest_first(
    memory: UserSessionsAgentSession, client: InMemoryItems
) -> None:
    items = [message("user", str(n)) for n in range(7)]
    asyncio.run(memory.add_items(items))  # type: ignore[arg-type]
    assert asyncio.run(memory.get_items(3)) == items[-3:]
    assert client.pages[-1] == {"order": "desc", "limit": 3}  # one page of the newest three
    assert asyncio.run(memory.get_items(100)) == items
    assert asyncio.run(memory.get_items(0)) == []
    assert asyncio.run(memory.get_items()) == items


def test_get_items_without_a_limit_takes_the_session_settings_limit(client: InMemoryItems) -> None:
    memory = UserSessionsAgentSession(session_id=USER_SESSION, client=client, session_settings=SessionSettings(limit=2))
    items = [message("user", str(n)) for n in range(5)]
    asyncio.run(memory.add_items(items))  # type: ignore[arg-type]
    assert asyncio.run(memory.get_items()) == items[-2:]
    assert asyncio.run(memory.get_items(4)) == items[-4:]


def test_a_limit_over_a_page_reads_page_after_page(client: InMemoryItems) -> None:
    memory = UserSessionsAgentSession(session_id=USER_SESSION, client=client)
    items = [message("user", str(n)) for n in range(1200)]
    asyncio.run(memory.add_items(items))  # type: ignore[arg-type]
    assert asyncio.run(memory.get_items(1100)) == items[-1100:]
    assert {page["limit"] for page in client.pages} == {500}


def test_pop_item_returns_the_newest_and_none_once_empty(memory: UserSessionsAgentSession) -> None:
    asyncio.run(memory.add_items([message("user", "a"), message("assistant", "b")]))  # type: ignore[list-item]
    assert asyncio.run(memory.pop_item()) == message("assistant", "b")
    assert asyncio.run(memory.pop_item()) == message("user", "a")
    assert asyncio.run(memory.pop_item()) is None


def test_clear_session_empties_the_history(memory: UserSessionsAgentSession) -> None:
    asyncio.run(memory.add_items([message("user", "a")]))  # type: ignore[list-item]
    asyncio.run(memory.clear_session())
    assert asyncio.run(memory.get_items()) == []


def test_adding_nothing_sends_nothing(memory: UserSessionsAgentSession, client: InMemoryItems) -> None:
    asyncio.run(memory.add_items([]))
    assert client.appends == []


def test_more_items_than_one_append_takes_go_in_order_in_several(
    memory: UserSessionsAgentSession, client: InMemoryItems
) -> None:
    items = [message("user", str(n)) for n in range(250)]
    asyncio.run(memory.add_items(items))  # type: ignore[arg-type]
    assert [len(batch) for batch in client.appends] == [100, 100, 50]
    assert asyncio.run(memory.get_items()) == items


def test_items_heavier_than_one_append_takes_go_in_several(
    memory: UserSessionsAgentSession, client: InMemoryItems
) -> None:
    heavy = [message("tool", "é" * 10_000) for _ in range(40)]  # 60 kB each as sent (\u00e9), 2.4 MB in all
    asyncio.run(memory.add_items(heavy))  # type: ignore[arg-type]
    assert len(client.appends) == 3
    assert all(len(encode_json({"items": batch})) <= 1024 * 1024 for batch in client.appends)
    assert asyncio.run(memory.get_items()) == heavy


def test_never_calls_the_client_on_the_event_loops_thread(
    memory: UserSessionsAgentSession, client: InMemoryItems
) -> None:
    async def use() -> int:
        await memory.add_items([message("user", "a")])  # type: ignore[list-item]
        await memory.get_items()
        await memory.get_items(1)
        await memory.pop_item()
        await memory.clear_session()
        return threading.get_ident()

    loop_thread = asyncio.run(use())
    assert client.threads
    assert loop_thread not in client.threads


def test_a_slow_client_call_leaves_the_event_loop_free(memory: UserSessionsAgentSession) -> None:
    release = threading.Event()
    entered = threading.Event()

    class Slow(InMemoryItems):
        def clear_items(self, user_session: Any) -> None:
            entered.set()
            release.wait(5)

    slow = UserSessionsAgentSession(session_id=USER_SESSION, client=Slow())

    async def run() -> list[str]:
        order: list[str] = []
        clearing = asyncio.create_task(slow.clear_session())
        while not entered.is_set():
            await asyncio.sleep(0.01)
        order.append("the loop ran while the call was blocked")
        release.set()
        await clearing
        order.append("cleared")
        return order

    assert asyncio.run(run()) == ["the loop ran while the call was blocked", "cleared"]


def test_a_cancelled_write_is_waited_for_before_the_cancellation_goes_on() -> None:
    release = threading.Event()
    entered = threading.Event()
    finished = threading.Event()

    class Slow(InMemoryItems):
        def append_items(self, *args: Any, **kwargs: Any) -> list[ConversationItem]:
            entered.set()
            release.wait(5)
            stored = super().append_items(*args, **kwargs)
            finished.set()
            return stored

    slow_client = Slow()
    slow = UserSessionsAgentSession(session_id=USER_SESSION, client=slow_client)

    async def run() -> bool:
        adding = asyncio.create_task(slow.add_items([message("user", "a")]))  # type: ignore[list-item]
        while not entered.is_set():
            await asyncio.sleep(0.01)
        adding.cancel()
        await asyncio.sleep(0.05)
        assert not adding.done()  # still waiting for the append's outcome
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await adding
        return finished.is_set()

    assert asyncio.run(run()) is True
    assert len(slow_client.items) == 1
