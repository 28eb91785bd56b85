"""Every committed write of a user session invalidates its cached representation.

The database session itself keeps the list, so no write path can forget it:

- ORM writes (create aside, see below; PATCH, soft delete, restore, the code
  issue, ``session.delete`` for purge) are noted by an ``after_flush`` hook,
  with the version the flush wrote, or as erased.
- Core ``UPDATE``/``DELETE`` statements on ``user_sessions`` bypass the ORM's
  bookkeeping. Their callers note what they wrote with :func:`record_write`
  and mark the statement with :data:`RECORDED`; a statement without that
  mark is refused (:class:`UnrecordedUserSessionWrite`), so a new write path
  that forgets fails its first test instead of serving stale reads.
- After the outermost transaction commits, and before the request that made
  it is answered, the noted sessions are invalidated in one Redis call. A
  transaction that rolls back invalidates nothing.

A statement that commits by itself, outside the session's transaction (a
PATCH's conditional UPDATE), calls :func:`invalidate_committed` right after.

A created session needs no invalidation: nothing can be cached under a uuid
that had no live session, and the erasure of an earlier one with that uuid
invalidated it already.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from service.models import UserSession
from service.user_session_cache import user_session_cache

# db_session.info key: {uuid: version committed, or None for erased}.
_WRITES = "user_session_writes"
_RECORDED_OPTION = "user_session_writes_recorded"
# Execution options of a Core statement whose writes its caller records.
RECORDED: dict[str, Any] = {_RECORDED_OPTION: True}


class UnrecordedUserSessionWrite(RuntimeError):
    """A Core UPDATE or DELETE of user sessions that does not record what it wrote."""


def record_write(db_session: Session, user_session_uuid: uuid.UUID, version: int | None) -> None:
    """Note that this transaction wrote the session at ``version`` (None: erased it)."""
    writes: dict[uuid.UUID, int | None] = db_session.info.setdefault(_WRITES, {})
    if user_session_uuid in writes:
        known = writes[user_session_uuid]
        version = None if known is None or version is None else max(known, version)
    writes[user_session_uuid] = version


def invalidate_committed(writes: dict[uuid.UUID, int | None]) -> None:
    """Invalidate what a statement that committed on its own wrote: {uuid: version, or None for erased}."""
    cache = user_session_cache() if has_app_context() else None
    if cache is not None:
        cache.invalidate(writes)


def pending_writes(db_session: Session) -> dict[uuid.UUID, int | None]:
    """What the current transaction has noted so far (for tests and diagnostics)."""
    return dict(db_session.info.get(_WRITES, {}))


def _after_flush(db_session: Session, _flush_context: UOWTransaction) -> None:
    for instance in db_session.dirty:
        if isinstance(instance, UserSession) and db_session.is_modified(instance, include_collections=False):
            record_write(db_session, instance.uuid, instance.version)
    for instance in db_session.deleted:
        if isinstance(instance, UserSession):
            record_write(db_session, instance.uuid, None)


def _refuse_unrecorded_writes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is UserSession and not state.execution_options.get(_RECORDED_OPTION):
        raise UnrecordedUserSessionWrite(
            "a Core UPDATE/DELETE of user_sessions must call record_write() and run with "
            "execution_options(**RECORDED), or the cache would keep serving what it replaced"
        )


def _after_commit(db_session: Session) -> None:
    if db_session.in_nested_transaction():
        return  # a savepoint: the outermost transaction may still roll back
    writes = db_session.info.pop(_WRITES, None)
    if writes:
        invalidate_committed(writes)


def _after_transaction_end(db_session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # Rolled back (a commit took its writes already): nothing to invalidate.
        db_session.info.pop(_WRITES, None)


def install(target: Any) -> None:
    """Listen on ``target`` (``db.session``); once, however many apps are made."""
    for name, listener in (
        ("after_flush", _after_flush),
        ("do_orm_execute", _refuse_unrecorded_writes),
        ("after_commit", _after_commit),
        ("after_transaction_end", _after_transaction_end),
    ):
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)
