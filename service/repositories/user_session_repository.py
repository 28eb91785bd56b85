"""``UserSessionRepository``: user sessions, with soft delete and expiry.

Reads and the writes of a PATCH return ``UserSessionRow``s. Every write notes
what it changed (``service.repositories.changes``), so whoever listens (the
cache) hears of it once it is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, bindparam, select, update
from sqlalchemy.orm import InstrumentedAttribute

from service.database import UTCDateTime, in_unit_of_work, utcnow
from service.models import UserSession, UserSessionRow
from service.repositories.base_repository import BaseRepository
from service.repositories.changes import CHANGES_NOTED, NOTHING_COPIED_CHANGES, note_change, publish_committed
from service.repositories.prepared import PreparedStatement
from service.repositories.query import Keyset, Page, SortOrder, attribute_columns
from service.repositories.user_session_filters import FilterShape, UserSessionFilters, criteria_of, parameters_of
from service.repositories.user_session_updates import (
    patch_in_place_statement,
    patchable_in_place,
    update_if_unchanged_statement,
)

_READ_LIVE = PreparedStatement(
    select(*attribute_columns(UserSession)).where(
        UserSession.uuid == bindparam("identity"), UserSession.live_clause(bindparam("now", type_=UTCDateTime()))
    ),
    UserSessionRow,
)

# Takes the next ``count`` seqs of a live session's conversation: the row stays
# locked until the unit of work ends, so racing appends queue here, each
# batch's seqs consecutive. Writes no version and notes no change: no
# representation holds the counter.
_RESERVE_ITEM_SEQS = PreparedStatement(
    update(UserSession)
    .where(UserSession.uuid == bindparam("identity"), UserSession.live_clause(bindparam("now", type_=UTCDateTime())))
    .values(last_item_seq=UserSession.last_item_seq + bindparam("count", type_=BigInteger()))
    .returning(UserSession.last_item_seq)
    .execution_options(synchronize_session=False, **NOTHING_COPIED_CHANGES),
    changes_noted_by_caller=True,
)
# Locks a live session's row until the unit of work ends (SQLite: its
# ``BEGIN IMMEDIATE`` holds the database's write lock already).
_LOCK_LIVE = PreparedStatement(
    select(UserSession.uuid)
    .where(UserSession.uuid == bindparam("identity"), UserSession.live_clause(bindparam("now", type_=UTCDateTime())))
    .with_for_update()
)


class VerificationAttempt(NamedTuple):
    """An attempt the database has counted: what it is judged against."""

    verification_code_hash: str
    email: str | None
    verification_attempts: int
    max_verification_attempts: int


class UserSessionRepository(BaseRepository[UserSession]):
    """User sessions by uuid. A soft-deleted or expired session is hidden
    unless the caller asks to include deleted ones."""

    model = UserSession
    row_type = UserSessionRow

    SORTABLE: dict[str, InstrumentedAttribute[Any]] = {
        "created_at": UserSession.created_at,
        "updated_at": UserSession.updated_at,
    }

    def list_page(
        self,
        filters: UserSessionFilters,
        *,
        sort: SortOrder,
        limit: int,
        after: Keyset | None = None,
        with_count: bool = False,
        now: datetime | None = None,
    ) -> Page[UserSessionRow]:
        """One keyset page of the sessions that match ``filters``, in ``sort`` order.

        Queries of the same shape (which filters are given, not their values)
        share their SQL, with the values bound: it is built and compiled once.
        """
        shape = FilterShape.of(filters, self.db_session.get_bind().dialect.name)
        query: Any = self.query()
        return (  # type: ignore[no-any-return]
            query.where(*criteria_of(shape), **parameters_of(filters, now or utcnow()))
            .prepared(shape)
            .order_by(self.sort_column(sort), descending=sort.descending)
            .after(after)
            .limit(limit)
            .page(with_count=with_count)
        )

    def sort_column(self, sort: SortOrder) -> InstrumentedAttribute[Any]:
        """The column behind a sort order; ValueError for one that cannot be sorted on."""
        try:
            return self.SORTABLE[sort.field]
        except KeyError:
            raise ValueError(f"user sessions cannot be sorted by {sort.field!r}") from None

    def get_by_uuid(
        self,
        user_session_uuid: uuid.UUID,
        *,
        include_deleted: bool = False,
        for_update: bool = False,
        now: datetime | None = None,
    ) -> UserSession | None:
        """The session with this uuid (a tracked instance, to change), or None
        when it is missing (or not live)."""
        user_session = self.get_by_id(user_session_uuid, for_update=for_update)
        if user_session is None or include_deleted or user_session.is_live(now or utcnow()):
            return user_session
        return None

    def read_by_uuid(
        self, user_session_uuid: uuid.UUID, *, include_deleted: bool = False, now: datetime | None = None
    ) -> UserSessionRow | None:
        """The session as a row, or None when it is missing (or not live): one
        statement, liveness judged in SQL."""
        if include_deleted:
            row: UserSessionRow | None = self.read_by_id(user_session_uuid)
            return row
        return self._first(_READ_LIVE, {"identity": user_session_uuid, "now": now or utcnow()})  # type: ignore[no-any-return]

    def insert(self, values: Mapping[str, Any]) -> UserSessionRow:
        """Insert a session from attribute values (the model's defaults fill the rest)."""
        row: UserSessionRow = self.insert_row(values)
        return row

    def update_if_unchanged(
        self, user_session_uuid: uuid.UUID, version: int, changes: Mapping[str, Any], *, now: datetime
    ) -> UserSessionRow | None:
        """Apply ``changes`` (attribute name to value) to the live session if it is
        still at ``version``, bumping it, and return the row as written; None when
        it changed, went or expired meanwhile (nothing is written then)."""
        statement = update_if_unchanged_statement(frozenset(changes))
        parameters = {**changes, "identity": user_session_uuid, "expected_version": version, "now": now}
        return self._write(statement, user_session_uuid, parameters)

    def patch_in_place(
        self, user_session_uuid: uuid.UUID, values: Mapping[str, Any], *, version: int | None, now: datetime
    ) -> UserSessionRow | None:
        """Set plain attributes on the live session in one statement, bumping its
        version, and return the row as written.

        None when that is not done: ``values`` are not all plain
        (``patchable_in_place``), or the session is missing, not live, not at
        ``version`` (when given), already holds every value, or holds an
        e-mail address SQL cannot compare as Python does. A new e-mail address
        (not the same one in other case) resets the verification, as
        ``EMAIL_VERIFICATION_RESET`` says.
        """
        if not patchable_in_place(values):
            return None
        email = values.get("email")
        statement = patch_in_place_statement(frozenset(values), version is not None)
        parameters = {**values, "identity": user_session_uuid, "now": now, "email_key": (email or "").lower()}
        if version is not None:
            parameters["expected_version"] = version
        return self._write(statement, user_session_uuid, parameters)

    def _write(
        self, statement: PreparedStatement, user_session_uuid: uuid.UUID, parameters: Mapping[str, Any]
    ) -> UserSessionRow | None:
        """Run a one-row ``UPDATE … RETURNING`` and note what it changed: for the
        unit of work's commit, or at once where the statement committed by itself."""
        row: UserSessionRow | None = self._first(statement, parameters)
        if row is not None:
            if in_unit_of_work(self.db_session):
                note_change(self.db_session, user_session_uuid, row.version)
            else:
                publish_committed({user_session_uuid: row.version})
        return row

    def reserve_item_seqs(self, user_session_uuid: uuid.UUID, count: int, *, now: datetime) -> int | None:
        """Take the next ``count`` seqs of the live session's conversation and
        return the last of them; None when the session is missing or not live.

        Within a unit of work only: the session's row stays locked until it
        ends, so no other append or pop of this session runs meanwhile.
        """
        self._require_unit_of_work()
        row = self._first(_RESERVE_ITEM_SEQS, {"identity": user_session_uuid, "count": count, "now": now})
        return None if row is None else int(row.last_item_seq)

    def lock_live(self, user_session_uuid: uuid.UUID, *, now: datetime) -> bool:
        """Lock the live session's row until the unit of work ends; False when
        it is missing or not live. Changes of one session's items take this
        lock first, so they run one at a time and never beside its deletion."""
        self._require_unit_of_work()
        return self._first(_LOCK_LIVE, {"identity": user_session_uuid, "now": now}) is not None

    def _require_unit_of_work(self) -> None:
        if not in_unit_of_work(self.db_session):
            raise RuntimeError("a row lock outside a unit of work would end with its statement")

    def soft_delete(self, user_session: UserSession, *, now: datetime) -> UserSession:
        """Mark the session deleted; it stays restorable until purged."""
        return self.update(user_session, {"deleted_at": now, "updated_at": now})

    def restore(self, user_session: UserSession, *, now: datetime) -> UserSession:
        """Undo a soft delete and an expiry that has passed."""
        changes: dict[str, object] = {"deleted_at": None, "updated_at": now}
        if user_session.expires_at is not None and user_session.expires_at <= now:
            changes["expires_at"] = None
        return self.update(user_session, changes)

    def purge(self, user_session: UserSession) -> None:
        """Erase the session for good (GDPR erasure)."""
        self.delete(user_session)

    def count_verification_attempt(self, user_session_uuid: uuid.UUID, *, now: datetime) -> VerificationAttempt | None:
        """Count one attempt at the pending code, atomically, if one may still be judged.

        One conditional UPDATE: the database counts the attempt only while the
        session is live, its code unexpired and its attempts not used up, so
        concurrent checks can never be judged more than the maximum. Returns the
        code hash, the e-mail it was issued for and the new count, or None when
        no attempt may be judged. ``version`` is bumped here by hand: the ORM's
        version counter does not see Core UPDATEs (nor does the cache
        invalidation, which is told here).
        """
        statement = (
            update(UserSession)
            .where(
                UserSession.uuid == user_session_uuid,
                UserSession.live_clause(now),
                UserSession.verification_code_hash.is_not(None),
                UserSession.verification_expires_at > now,
                UserSession.verification_attempts < UserSession.max_verification_attempts,
            )
            .values(
                verification_attempts=UserSession.verification_attempts + 1,
                version=UserSession.version + 1,
                updated_at=now,
            )
            .returning(
                UserSession.verification_code_hash,
                UserSession.email,
                UserSession.verification_attempts,
                UserSession.max_verification_attempts,
                UserSession.version,
            )
            .execution_options(synchronize_session=False, **CHANGES_NOTED)
        )
        row = self.db_session.execute(statement).first()
        if row is None:
            return None
        code_hash, email, attempts, max_attempts, version = row
        assert code_hash is not None  # the WHERE clause requires it
        note_change(self.db_session, user_session_uuid, version)
        return VerificationAttempt(code_hash, email, attempts, max_attempts)

    def mark_email_verified(self, user_session_uuid: uuid.UUID, *, now: datetime) -> None:
        """Set ``is_email_verified`` and forget the code, in the attempt's transaction
        (whose UPDATE already bumped ``version`` for this check)."""
        statement = (
            update(UserSession)
            .where(UserSession.uuid == user_session_uuid)
            .values(
                is_email_verified=True,
                verification_code_hash=None,
                verification_expires_at=None,
                updated_at=now,
            )
            .returning(UserSession.version)
            .execution_options(synchronize_session=False, **CHANGES_NOTED)
        )
        version = self.db_session.execute(statement).scalar()
        if version is not None:
            note_change(self.db_session, user_session_uuid, version)
