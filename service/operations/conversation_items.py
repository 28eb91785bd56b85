"""Use cases of a session's conversation items: append, list, read, delete,
pop, clear. Nothing here knows HTTP.

Items live and die with their session: every use case raises
``UserSessionNotFound`` for a missing, soft-deleted or expired session. None
changes the session itself (no ``version``, ``updated_at`` or cached copy
changes).

Concurrency: every change of one session's items first locks the session's
row, in a unit of work (an append by bumping the session's ``last_item_seq``,
which also hands out its seqs; on PostgreSQL the bump and the insert are one
statement, which holds the lock until it commits). So appends and pops of
one session run one at a time: a batch's seqs are consecutive and never interleave with
another's, every pop takes the newest item at that moment, and no two pops
take the same one. Reads take no lock and run as one statement each.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.database import get_db_session, one_statement, utcnow
from service.errors import ItemAlreadyExists, ItemNotFound, UserSessionNotFound
from service.models import ConversationItemRow
from service.operations.documents import DocumentBounds
from service.repositories import (
    ItemFilters,
    Keyset,
    Page,
    UserSessionRepository,
    get_conversation_item_repository,
    get_user_session_repository,
)

APPEND_MAX_ITEMS = 100
CONTENT_BOUNDS = DocumentBounds(max_bytes=64 * 1024, max_depth=64)


def append_items(user_session_uuid: uuid.UUID, items: Sequence[Mapping[str, Any]]) -> list[ConversationItemRow]:
    """Store ``items`` (attribute values: ``content``, ``type``, ``role``, and
    ``id`` when the client chose it) at the end of the session's history, in
    order, all or none; return them as stored.

    ``ItemAlreadyExists`` when an ``id`` is taken (nothing is stored then).
    """
    now = utcnow()
    try:
        if get_conversation_item_repository().appends_in_one_statement():
            # PostgreSQL: one statement reserves the seqs and inserts, committing by itself.
            with one_statement() as db_session:
                stored = get_conversation_item_repository(db_session).append_in_one_statement(
                    user_session_uuid, items, now=now
                )
            if not stored:
                raise UserSessionNotFound()
            return stored
        with get_db_session() as db_session:
            last_seq = get_user_session_repository(db_session).reserve_item_seqs(user_session_uuid, len(items), now=now)
            if last_seq is None:
                raise UserSessionNotFound()
            first_seq = last_seq - len(items) + 1
            return get_conversation_item_repository(db_session).insert_batch(
                user_session_uuid, first_seq, items, now=now
            )
    except IntegrityError:
        raise ItemAlreadyExists() from None


def list_items(
    user_session_uuid: uuid.UUID,
    filters: ItemFilters,
    *,
    descending: bool,
    limit: int,
    after: Keyset | None = None,
) -> Page[ConversationItemRow]:
    """One page of the session's items in ``seq`` order (newest first when
    ``descending``): one statement, a second only when the page is empty (to
    tell an empty history from a session that is not live)."""
    now = utcnow()
    page = get_conversation_item_repository().list_page(
        user_session_uuid, filters, descending=descending, limit=limit, after=after, now=now
    )
    if not page.items:
        _require_live(get_user_session_repository(), user_session_uuid)
    return page


def read_item(user_session_uuid: uuid.UUID, item_id: uuid.UUID) -> ConversationItemRow:
    """One item of the live session; ``ItemNotFound`` when it holds no such item."""
    row = get_conversation_item_repository().read(user_session_uuid, item_id, now=utcnow())
    if row is None:
        _require_live(get_user_session_repository(), user_session_uuid)
        raise ItemNotFound()
    return row


def delete_item(user_session_uuid: uuid.UUID, item_id: uuid.UUID) -> None:
    """Remove one item; ``ItemNotFound`` when the session holds no such item."""
    with get_db_session() as db_session:
        _lock_live(db_session, user_session_uuid)
        if not get_conversation_item_repository(db_session).delete_one(user_session_uuid, item_id):
            raise ItemNotFound()


def pop_item(user_session_uuid: uuid.UUID) -> ConversationItemRow:
    """Remove the newest item and return it; ``ItemNotFound`` when the history is empty."""
    with get_db_session() as db_session:
        _lock_live(db_session, user_session_uuid)
        row = get_conversation_item_repository(db_session).delete_newest(user_session_uuid)
        if row is None:
            raise ItemNotFound("The user session's conversation holds no items.")
        return row


def clear_items(user_session_uuid: uuid.UUID) -> int:
    """Remove every item of the session (which stays); return how many went.

    ``seq`` goes on from where it was: the next append continues from the
    highest seq the session ever gave.
    """
    with get_db_session() as db_session:
        _lock_live(db_session, user_session_uuid)
        return get_conversation_item_repository(db_session).delete_all(user_session_uuid)


def _lock_live(db_session: Session, user_session_uuid: uuid.UUID) -> None:
    if not get_user_session_repository(db_session).lock_live(user_session_uuid, now=utcnow()):
        raise UserSessionNotFound()


def _require_live(repository: UserSessionRepository, user_session_uuid: uuid.UUID) -> None:
    if repository.read_by_uuid(user_session_uuid) is None:
        raise UserSessionNotFound()
