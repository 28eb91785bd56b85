"""An OpenAI Agents SDK session whose history is a user session's conversation items.

Needs the ``agents`` extra (``pip install './clients/python[agents]'``)::

    from agents import Agent, Runner
    from user_sessions_client import UserSessionsClient
    from user_sessions_client.agents import UserSessionsAgentSession

    client = UserSessionsClient("http://user-sessions:8000", api_key="…")
    memory = UserSessionsAgentSession(session_id=user_session["uuid"], client=client)
    result = await Runner.run(agent, "Hi", session=memory)

Every agent instance that builds one for the same user session shares the
same history: the service is the store, not the process.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar, cast

try:
    from agents.items import TResponseInputItem
    from agents.memory import SessionABC, SessionSettings
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "user_sessions_client.agents needs the OpenAI Agents SDK: pip install 'user-sessions-client[agents]'"
    ) from error

from user_sessions_client.client import MAX_ITEMS_PER_APPEND, UserSessionsClient, _jsonable, encode_json
from user_sessions_client.schemas import ConversationItemIn

__all__ = ["UserSessionsAgentSession"]

#: What one append may weigh: the service takes up to 1 MiB; this leaves room for the envelope.
MAX_APPEND_BYTES = 1024 * 1024 - 16 * 1024
#: The most items the service returns in one page.
MAX_PAGE_SIZE = 500

_T = TypeVar("_T")


class UserSessionsAgentSession(SessionABC):
    """The Agents SDK's ``Session`` (``get_items``, ``add_items``, ``pop_item``,
    ``clear_session``) kept in the user-sessions service, as the conversation
    items of the user session ``session_id``.

    Each SDK item is stored whole as an item's ``content`` (and read back
    equal), with the item's ``type`` (``"message"`` when it has none) and its
    ``role`` (when it has one) beside it, so the service can filter on them.

    The client's calls are blocking HTTP: each runs in a worker thread
    (:func:`asyncio.to_thread`), never on the event loop. The client may be
    shared by many sessions and tasks. Its retry rules hold: an append and a
    pop carry an ``Idempotency-Key``, so a retry after a lost answer neither
    stores items twice nor pops two. A write whose task is cancelled is
    waited for before the cancellation goes on, so its outcome is settled.

    The user session must exist (and be live): the service keeps items only
    for a session it knows, and answers :class:`~user_sessions_client.NotFound`
    otherwise. ``add_items`` of up to 100 items (and under 1 MiB) is one
    append, all or none; a longer list is appended in several, in order, and
    a failure may leave the first ones stored. An item whose JSON is over
    64 KiB is refused by the service (:class:`~user_sessions_client.InvalidRequest`).
    """

    def __init__(
        self,
        session_id: str | uuid.UUID,
        client: UserSessionsClient,
        *,
        session_settings: SessionSettings | None = None,
        page_size: int = 100,
    ) -> None:
        """``session_id`` is the user session's uuid; ``session_settings.limit`` is the
        ``get_items`` limit when none is given; ``page_size`` the items read per request."""
        self.session_id = str(uuid.UUID(str(session_id)))
        self.client = client
        self.session_settings = session_settings if session_settings is not None else SessionSettings()
        self.page_size = page_size

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The newest ``limit`` items (all when None, and no limit in ``session_settings``),
        oldest first."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        return await asyncio.to_thread(self._read, limit)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` to the history, in order."""
        if not items:
            return
        batches = _batches([_stored(item) for item in items])
        await _settled(asyncio.to_thread(self._append, batches))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the newest item and return it; None when the history is empty."""
        popped = await _settled(asyncio.to_thread(self.client.pop_item, self.session_id))
        return None if popped is None else cast(TResponseInputItem, popped["content"])

    async def clear_session(self) -> None:
        """Remove every item of the history; the user session itself stays."""
        await _settled(asyncio.to_thread(self.client.clear_items, self.session_id))

    def _read(self, limit: int | None) -> list[TResponseInputItem]:
        if limit is None:
            return [item["content"] for item in self.client.iter_items(self.session_id, page_size=self.page_size)]
        if limit <= 0:
            return []
        newest: list[TResponseInputItem] = []
        page_size = min(limit, MAX_PAGE_SIZE)
        for item in self.client.iter_items(self.session_id, order="desc", page_size=page_size):
            newest.append(item["content"])
            if len(newest) == limit:
                break
        newest.reverse()
        return newest

    def _append(self, batches: list[list[ConversationItemIn]]) -> None:
        for batch in batches:
            self.client.append_items(self.session_id, batch)


def _stored(item: TResponseInputItem) -> ConversationItemIn:
    """An SDK item as the service stores it: whole as ``content``, its type and role beside it."""
    fields = cast(Mapping[str, Any], item)
    stored: ConversationItemIn = {"content": item}
    kind = fields.get("type")
    stored["type"] = kind if isinstance(kind, str) else "message"
    role = fields.get("role")
    if isinstance(role, str):
        stored["role"] = role
    return stored


def _batches(items: list[ConversationItemIn]) -> list[list[ConversationItemIn]]:
    """``items`` cut, in order, into appends the service takes: up to 100 items, under 1 MiB."""
    batches: list[list[ConversationItemIn]] = []
    current: list[ConversationItemIn] = []
    weight = 0
    for item in items:
        size = len(encode_json(_jsonable(item))) + 1  # and a comma
        if current and (len(current) == MAX_ITEMS_PER_APPEND or weight + size > MAX_APPEND_BYTES):
            batches.append(current)
            current, weight = [], 0
        current.append(item)
        weight += size
    if current:
        batches.append(current)
    return batches


async def _settled(write: Awaitable[_T]) -> _T:
    """Await a write to the service; if the awaiting task is cancelled meanwhile, wait for the
    write's outcome first (the request is on its way: the caller must not read a history it
    may still change), then pass the cancellation on."""
    task = asyncio.ensure_future(write)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as error:
            cancelled = cancelled or error
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # looked at: a failed write is not reported as never retrieved
        raise cancelled
    return task.result()
