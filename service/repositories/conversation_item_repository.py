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
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    CursorResult,
    String,
    Text,
    Uuid,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from service.database import UTCDateTime
from service.models import DEFAULT_ITEM_TYPE, ConversationItem, ConversationItemRow, UserSession
from service.repositories.base_repository import BaseRepository
from service.repositories.changes import NOTHING_COPIED_CHANGES
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


def _append_in_one_statement() -> PreparedStatement:
    """PostgreSQL: take the live session's next seqs and insert the batch, in one
    statement (a data-modifying CTE), so an append is one round trip that
    commits by itself, as a create is. The batch arrives as arrays, unnested
    in order: one statement for every batch size.

    ``WITH reserved AS (UPDATE user_sessions SET last_item_seq = last_item_seq + :count
    WHERE uuid = :user_session_uuid AND <live> RETURNING last_item_seq)
    INSERT INTO conversation_items … SELECT :user_session_uuid, last_item_seq - :count + ord, …
    FROM reserved, unnest(:ids, :types, :roles, :contents) WITH ORDINALITY … RETURNING …``

    The UPDATE holds the session's row lock until the statement commits; a
    session that is not live reserves nothing and so inserts nothing.
    """
    count = bindparam("count", type_=BigInteger())
    user_session_uuid = bindparam("user_session_uuid", type_=Uuid())
    now = bindparam("now", type_=UTCDateTime())
    reserved = (
        update(UserSession)
        .where(UserSession.uuid == user_session_uuid, UserSession.live_clause(now))
        .values(last_item_seq=UserSession.last_item_seq + count)
        .returning(UserSession.last_item_seq)
        .cte("reserved")
    )
    batch = (
        func.unnest(
            bindparam("ids", type_=ARRAY(Uuid())),
            bindparam("types", type_=ARRAY(String())),
            bindparam("roles", type_=ARRAY(String())),
            # JSON text, cast: an ARRAY(JSONB) parameter would take a list content for an array dimension.
            cast(bindparam("contents", type_=ARRAY(Text())), ARRAY(JSONB())),
        )
        .table_valued("id", "type", "role", "content", with_ordinality="ord")
        .render_derived()
    )
    rows = select(
        user_session_uuid,
        reserved.c.last_item_seq - count + batch.c.ord,
        batch.c.id,
        batch.c.type,
        batch.c.role,
        batch.c.content,
        now,
    ).select_from(reserved.join(batch, true()))
    table: Any = ConversationItem.__table__
    statement = (
        insert(table)
        .from_select(["user_session_uuid", "seq", "id", "type", "role", "content", "created_at"], rows)
        .add_cte(reserved)
        .returning(*attribute_columns(ConversationItem))
        .execution_options(**NOTHING_COPIED_CHANGES)
    )
    return PreparedStatement(statement, ConversationItemRow)


_APPEND_IN_ONE_STATEMENT = _append_in_one_statement()


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

    def appends_in_one_statement(self) -> bool:
        """Whether :meth:`append_in_one_statement` serves this database (PostgreSQL);
        elsewhere an append is ``reserve_item_seqs`` then :meth:`insert_batch`."""
        return self.db_session.get_bind().dialect.name == "postgresql"

    def append_in_one_statement(
        self, user_session_uuid: uuid.UUID, items: Sequence[Mapping[str, Any]], *, now: datetime
    ) -> list[ConversationItemRow]:
        """Store ``items`` at the end of the live session's history, in order,
        in one statement; return them as stored, or ``[]`` when the session is
        not live (nothing is stored then)."""
        parameters = {
            "user_session_uuid": user_session_uuid,
            "count": len(items),
            "now": now,
            "ids": [item.get("id") or uuid.uuid4() for item in items],
            "types": [item.get("type", DEFAULT_ITEM_TYPE) for item in items],
            "roles": [item.get("role") for item in items],
            "contents": [json.dumps(item["content"], ensure_ascii=False) for item in items],
        }
        rows: list[ConversationItemRow] = self._all(_APPEND_IN_ONE_STATEMENT, parameters)
        return sorted(rows, key=lambda row: row.seq)

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
