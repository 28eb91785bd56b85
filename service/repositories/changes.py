"""What the writes of user sessions changed, told once it is committed.

Every write reports what it changed in one way, as ``{uuid: version}`` (the
version it committed, or None for an erased session):

- ORM writes (PATCH under a lock, soft delete, restore, the code issue,
  ``db_session.delete`` for purge) are noted by an ``after_flush`` hook.
- Core ``UPDATE``/``DELETE`` statements on ``user_sessions`` bypass the ORM's
  bookkeeping: their callers note what they wrote with :func:`note_change`
  and run the statement with :data:`CHANGES_NOTED`. A statement without that
  mark is refused (:class:`UnnotedUserSessionWrite`), so a new write path
  that forgets fails its first test instead of leaving stale copies about.
- A Core ``UPDATE`` that writes only what no copy holds (``last_item_seq``,
  the items counter) runs with :data:`NOTHING_COPIED_CHANGES`: it notes
  nothing, so appending items never invalidates a cached session.
- After the outermost transaction commits, the noted changes go to every
  listener at once; a transaction that rolls back tells nothing. A statement
  that commits by itself, outside any transaction, is told with
  :func:`publish_committed` right after it.

Listeners are installed by the app factory (the cache's invalidation); this
module knows none of them. A created session is not a change worth telling:
nothing can hold a copy of a uuid that had no live session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from service.models import UserSession

Changes = Mapping[uuid.UUID, int | None]
ChangeListener = Callable[[Changes], None]

# db_session.info key: {uuid: version committed, or None for erased}.
_PENDING = "user_session_changes"
_NOTED_OPTION = "user_session_changes_noted"
# Execution options of a Core statement whose changes its caller notes.
CHANGES_NOTED: dict[str, Any] = {_NOTED_OPTION: True}
# Execution options of a Core UPDATE that writes only columns no copy of a
# session holds (``UNCOPIED_ATTRIBUTES``): there is nothing to note, and the
# guard checks that it sets nothing else.
NOTHING_COPIED_CHANGES: dict[str, Any] = {_NOTED_OPTION: True, "user_session_uncopied_only": True}
# Columns of ``user_sessions`` that no representation (and so no cached copy)
# holds: the items counter, which appends bump without changing the session.
UNCOPIED_ATTRIBUTES = frozenset({"last_item_seq"})

_listeners: list[ChangeListener] = []


class UnnotedUserSessionWrite(RuntimeError):
    """A Core UPDATE or DELETE of user sessions that does not note what it changed."""


def listen(listener: ChangeListener) -> None:
    """Call ``listener`` with what every committed write changed (once, however often asked)."""
    if listener not in _listeners:
        _listeners.append(listener)


def note_change(db_session: Session, user_session_uuid: uuid.UUID, version: int | None) -> None:
    """Note that this transaction wrote the session at ``version`` (None: erased it)."""
    pending: dict[uuid.UUID, int | None] = db_session.info.setdefault(_PENDING, {})
    if user_session_uuid in pending:
        known = pending[user_session_uuid]
        version = None if known is None or version is None else max(known, version)
    pending[user_session_uuid] = version


def publish_committed(changes: Changes) -> None:
    """Tell every listener what a committed write changed."""
    if changes:
        for listener in _listeners:
            listener(changes)


def pending_changes(db_session: Session) -> dict[uuid.UUID, int | None]:
    """What the current transaction has noted so far (for tests and diagnostics)."""
    return dict(db_session.info.get(_PENDING, {}))


def _after_flush(db_session: Session, _flush_context: UOWTransaction) -> None:
    for instance in db_session.dirty:
        if isinstance(instance, UserSession) and db_session.is_modified(instance, include_collections=False):
            note_change(db_session, instance.uuid, instance.version)
    for instance in db_session.deleted:
        if isinstance(instance, UserSession):
            note_change(db_session, instance.uuid, None)


def _refuse_unnoted_writes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.class_ is not UserSession:
        return
    if not state.execution_options.get(_NOTED_OPTION):
        raise UnnotedUserSessionWrite(
            "a Core UPDATE/DELETE of user_sessions must call note_change() and run with "
            "execution_options(**CHANGES_NOTED), or copies of what it replaced would outlive it"
        )
    if state.execution_options.get("user_session_uncopied_only"):
        written = {getattr(column, "key", str(column)) for column in getattr(state.statement, "_values", None) or {}}
        if not state.is_update or not written <= UNCOPIED_ATTRIBUTES:
            raise UnnotedUserSessionWrite(
                "a statement run with NOTHING_COPIED_CHANGES writes only "
                + ", ".join(sorted(UNCOPIED_ATTRIBUTES))
                + "; this one writes "
                + ", ".join(sorted(written - UNCOPIED_ATTRIBUTES) or ["something else"])
            )


def _after_commit(db_session: Session) -> None:
    if db_session.in_nested_transaction():
        return  # a savepoint: the outermost transaction may still roll back
    publish_committed(db_session.info.pop(_PENDING, None) or {})


def _after_transaction_end(db_session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # Rolled back (a commit took its changes already): nothing to tell.
        db_session.info.pop(_PENDING, None)


def track(target: Any) -> None:
    """Note the changes of every write on ``target`` (``db.session``); once, however many apps are made."""
    for name, listener in (
        ("after_flush", _after_flush),
        ("do_orm_execute", _refuse_unnoted_writes),
        ("after_commit", _after_commit),
        ("after_transaction_end", _after_transaction_end),
    ):
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)
