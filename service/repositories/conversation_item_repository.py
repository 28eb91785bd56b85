"""``ConversationItemRepository``: the items of one session's conversation.

Every statement here names its session (``user_session_uuid = :…``) and
reads or writes only that session's items, along the primary key
``(user_session_uuid, seq)``: so the table can be sharded by session
(docs/operations.md) without a change of queries. Reads judge the session's
liveness in the same statement (an ``EXISTS`` on its row, which a sharded
table finds on the same shard).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, String, Uuid, bindparam, delete, exists, func, select

from service.database import UTCDateTime
from service.models import ConversationItem, ConversationItemRow, UserSession
from service.repositories.base_repository import BaseRepository
from service.repositories.prepared import PreparedStatement
from service.repositories.query import Keyset, ListQuery, Page, attribute_columns


def _session_is(parameter: str = "user_session_uuid") -> ColumnElement[bool]:
    return ConversationItem.user_session_uuid == bindparam(parameter, type_=Uuid())


def _session_is_live() -> ColumnElement[bool]:
    """The named session exists and is live (at ``:now``)."""
    return exists().where(
        UserSession.uuid == bindparam("user_session_uuid", type_=Uuid()),
        UserSession.live_clause(bindparam("now", type_=UTCDateTime())),
    )


_READ = PreparedStatement(
    select(*attribute_columns(ConversationItem)).where(
        _session_is(), ConversationItem.id == bindparam("item_id", type_=Uuid()), _session_is_live()
    ),
    ConversationItemRow,
)
# The newest item of the session, removed. The subquery walks the primary
# key backwards from the session's end: one index probe.
_DELETE_NEWEST = (
    delete(ConversationItem)
    .where(
        _session_is(),
        ConversationItem.seq == select(func.max(ConversationItem.seq)).where(_session_is()).scalar_subquery(),
    )
    .returning(*attribute_columns(ConversationItem))
    .execution_options(synchronize_session=False)
)
_DELETE_ONE = (
    delete(ConversationItem)
    .where(_session_is(), ConversationItem.id == bindparam("item_id", type_=Uuid()))
    .execution_options(synchronize_session=False)
)
_DELETE_ALL = delete(ConversationItem).where(_session_is()).execution_options(synchronize_session=False)


@dataclass(frozen=True)
class ItemFilters:
    """Exact matches a listing asks for (None: any)."""

    type: str | None = None
    role: str | None = None

    @property
    def shape(self) -> tuple[bool, bool]:
        return self.type is not None, self.role is not None

    def parameters(self) -> dict[str, Any]:
        return {"item_type": self.type, "item_role": self.role}


@functools.cache
def _criteria(shape: tuple[bool, bool]) -> tuple[ColumnElement[bool], ...]:
    """The criteria of a listing of one session's items, values left to bound parameters."""
    criteria = [_session_is(), _session_is_live()]
    by_type, by_role = shape
    if by_type:
        criteria.append(ConversationItem.type == bindparam("item_type", type_=String()))
    if by_role:
        criteria.append(ConversationItem.role == bindparam("item_role", type_=String()))
    return tuple(criteria)


class ConversationItemRepository(BaseRepository[ConversationItem]):
    """One session's items, in ``seq`` order. Writes are meant for a unit of
    work that has locked the session (``UserSessionRepository.lock_live`` or
    ``reserve_item_seqs``)."""

    model = ConversationItem
    row_type = ConversationItemRow

    def insert_batch(
        self, user_session_uuid: uuid.UUID, first_seq: int, items: Sequence[Mapping[str, Any]], *, now: datetime
    ) -> list[ConversationItemRow]:
        """Store ``items`` in order, from ``first_seq`` on; return them as stored."""
        rows = [
            {**item, "user_session_uuid": user_session_uuid, "seq": first_seq + offset, "created_at": now}
            for offset, item in enumerate(items)
        ]
        return self.insert_rows(rows)

    def list_page(
        self,
        user_session_uuid: uuid.UUID,
        filters: ItemFilters,
        *,
        descending: bool,
        limit: int,
        after: Keyset | None,
        now: datetime,
    ) -> Page[ConversationItemRow]:
        """One keyset page of the live session's items that match ``filters``,
        in ``seq`` order (newest first when ``descending``). Empty when the
        session is not live, as when it has no items."""
        query: ListQuery[ConversationItemRow] = ListQuery(
            self.db_session, ConversationItem, ConversationItemRow, tiebreaker=ConversationItem.seq
        )
        return (
            query.where(
                *_criteria(filters.shape),
                user_session_uuid=user_session_uuid,
                now=now,
                **{name: value for name, value in filters.parameters().items() if value is not None},
            )
            .prepared(("conversation_items", filters.shape))
            .order_by(ConversationItem.seq, descending=descending)
            .after(after)
            .limit(limit)
            .page()
        )

    def read(self, user_session_uuid: uuid.UUID, item_id: uuid.UUID, *, now: datetime) -> ConversationItemRow | None:
        """The item, or None when the session has no such item or is not live."""
        row: ConversationItemRow | None = self._first(
            _READ, {"user_session_uuid": user_session_uuid, "item_id": item_id, "now": now}
        )
        return row

    def delete_newest(self, user_session_uuid: uuid.UUID) -> ConversationItemRow | None:
        """Remove the item with the highest seq and return it; None when there is none."""
        row = self.db_session.execute(_DELETE_NEWEST, {"user_session_uuid": user_session_uuid}).first()
        return None if row is None else ConversationItemRow._make(row)

    def delete_one(self, user_session_uuid: uuid.UUID, item_id: uuid.UUID) -> bool:
        """Remove the item; False when the session has no such item."""
        result: CursorResult[Any] = self.db_session.execute(  # type: ignore[assignment]
            _DELETE_ONE, {"user_session_uuid": user_session_uuid, "item_id": item_id}
        )
        return result.rowcount == 1

    def delete_all(self, user_session_uuid: uuid.UUID) -> int:
        """Remove every item of the session; return how many went."""
        result: CursorResult[Any] = self.db_session.execute(  # type: ignore[assignment]
            _DELETE_ALL, {"user_session_uuid": user_session_uuid}
        )
        return result.rowcount
