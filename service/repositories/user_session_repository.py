"""``UserSessionRepository``: user sessions, with soft delete and expiry."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Table, bindparam, case, func, inspect, literal, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from service.cache_invalidation import RECORDED, invalidate_committed, record_write
from service.database import UTCDateTime, in_unit_of_work, utcnow
from service.models import UserSession
from service.repositories.base_repository import BaseRepository
from service.repositories.prepared import PreparedStatement
from service.repositories.query import Keyset, ListQuery, Page, SortOrder, attribute_columns
from service.repositories.text_functions import ascii_lower, is_printable_ascii, printable_ascii
from service.repositories.user_session_filters import FilterShape, UserSessionFilters, criteria_of, parameters_of

_READ_LIVE = PreparedStatement(
    select(*attribute_columns(UserSession)).where(
        UserSession.uuid == bindparam("identity"), UserSession.live_clause(bindparam("now", type_=UTCDateTime()))
    ),
    "UserSessionRow",
)


# Attributes a patch sets to the value it sends, whatever the stored one:
# such a patch can be applied in one statement (``patch_in_place``). metadata
# merges into what is stored, so it is worked out on a read first.
PLAIN_ATTRIBUTES = frozenset({"name", "email", "ip_address", "consent_user_data", "completed_at", "expires_at"})
# What a new e-mail address resets: a verification speaks for one address.
EMAIL_VERIFICATION_RESET = {"is_email_verified": False, "verification_code_hash": None, "verification_expires_at": None}


def patchable_in_place(values: Mapping[str, Any]) -> bool:
    """Whether ``patch_in_place`` can apply ``values``: plain attributes only, at
    least one, and an e-mail address (if any) that SQL compares as Python does."""
    if not values or not PLAIN_ATTRIBUTES.issuperset(values):
        return False
    email = values.get("email")
    return email is None or printable_ascii(email)


def _versioned_update(
    attributes: frozenset[str], conditions: list[ColumnElement[bool]], extra: Mapping[Any, Any] | None = None
) -> PreparedStatement:
    """``UPDATE … RETURNING`` every attribute where ``conditions`` hold: it sets
    ``attributes`` from the parameters of their names (and ``extra`` columns
    to its expressions) and bumps the version."""
    table: Table = UserSession.__table__  # type: ignore[assignment]
    mapper = inspect(UserSession)
    values: dict[Any, Any] = {
        table.c[mapper.attrs[attribute].columns[0].name]: bindparam(attribute) for attribute in sorted(attributes)
    }
    values.update(extra or {})
    values[table.c.version] = table.c.version + 1
    statement = update(table).where(*conditions).values(values).returning(*attribute_columns(UserSession))
    return PreparedStatement(statement, "UserSessionRow", invalidated_by_caller=True)


@functools.cache
def _update_if_unchanged(attributes: frozenset[str]) -> PreparedStatement:
    """``UPDATE … RETURNING`` of these attributes, conditional on the version read."""
    table: Table = UserSession.__table__  # type: ignore[assignment]
    return _versioned_update(
        attributes,
        [
            table.c.uuid == bindparam("identity"),
            table.c.version == bindparam("expected_version"),
            UserSession.live_clause(bindparam("now", type_=UTCDateTime())),
        ],
    )


@functools.cache
def _patch_in_place(attributes: frozenset[str], at_version: bool) -> PreparedStatement:
    """``UPDATE … RETURNING`` that sets plain attributes on a live session
    when one of them differs from what is stored.

    With ``email`` among them, the stored address must be printable ASCII
    (or NULL), so that SQL can tell a new address from the same one in
    other case exactly as Python would; only a new one resets the
    verification. SET expressions read the row as it was before the update.
    """
    table: Table = UserSession.__table__  # type: ignore[assignment]
    now = bindparam("now", type_=UTCDateTime())
    extra: dict[Any, Any] = {table.c.updated_at: now}
    differs = [getattr(UserSession, name).is_distinct_from(bindparam(name)) for name in sorted(attributes)]
    conditions: list[ColumnElement[bool]] = [
        table.c.uuid == bindparam("identity"),
        UserSession.live_clause(now),
        or_(*differs),
    ]
    if at_version:
        conditions.append(table.c.version == bindparam("expected_version"))
    if "email" in attributes:
        stored = table.c.email
        conditions.append(or_(stored.is_(None), is_printable_ascii(stored)))
        same_address = func.coalesce(ascii_lower(stored), "") == bindparam("email_key")
        for attribute, cleared in EMAIL_VERIFICATION_RESET.items():
            column = table.c[attribute]
            extra[column] = case((same_address, column), else_=literal(cleared, column.type))
    return _versioned_update(attributes, conditions, extra)


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
    ) -> Page[Any]:
        """One keyset page of the sessions that match ``filters``, in ``sort`` order,
        as read-only rows with the attributes of a ``UserSession``."""
        return (
            self.filtered(filters, now=now or utcnow())
            .order_by(self.sort_column(sort), descending=sort.descending)
            .after(after)
            .limit(limit)
            .rows()
            .page(with_count=with_count)
        )

    def sort_column(self, sort: SortOrder) -> InstrumentedAttribute[Any]:
        """The column behind a sort order; ValueError for one that cannot be sorted on."""
        try:
            return self.SORTABLE[sort.field]
        except KeyError:
            raise ValueError(f"user sessions cannot be sorted by {sort.field!r}") from None

    def filtered(self, filters: UserSessionFilters, *, now: datetime) -> ListQuery[UserSession]:
        """A query of the sessions that match ``filters``; ``now`` decides what has expired.

        Queries of the same shape (which filters are given, not their values)
        share their SQL, with the values bound: it is built and compiled once.
        """
        shape = FilterShape.of(filters, self.db_session.get_bind().dialect.name)
        return self.query().where(*criteria_of(shape), **parameters_of(filters, now)).prepared(shape)

    def get_by_uuid(
        self,
        user_session_uuid: uuid.UUID,
        *,
        include_deleted: bool = False,
        for_update: bool = False,
        now: datetime | None = None,
    ) -> UserSession | None:
        """The session with this uuid, or None when it is missing (or not live)."""
        user_session = self.get_by_id(user_session_uuid, for_update=for_update)
        if user_session is None or include_deleted or user_session.is_live(now or utcnow()):
            return user_session
        return None

    def read_by_uuid(
        self, user_session_uuid: uuid.UUID, *, include_deleted: bool = False, now: datetime | None = None
    ) -> Any:
        """The session as a read-only row (see ``read_by_id``), or None when it
        is missing (or not live): one statement, liveness judged in SQL."""
        if include_deleted:
            return self.read_by_id(user_session_uuid)
        return self.read_one(_READ_LIVE, identity=user_session_uuid, now=now or utcnow())

    def update_if_unchanged(
        self, user_session_uuid: uuid.UUID, version: int, changes: Mapping[str, Any], *, now: datetime
    ) -> Any:
        """Apply ``changes`` (attribute name to value) to the live session if it is
        still at ``version``, bumping it, and return the row as written; None when
        it changed, went or expired meanwhile (nothing is written then).

        Outside a unit of work this is one statement that commits by itself,
        and the cached copy is invalidated right after it.
        """
        statement = _update_if_unchanged(frozenset(changes))
        parameters = {**changes, "identity": user_session_uuid, "expected_version": version, "now": now}
        return self._write(statement, user_session_uuid, parameters)

    def patch_in_place(
        self, user_session_uuid: uuid.UUID, values: Mapping[str, Any], *, version: int | None, now: datetime
    ) -> Any:
        """Set plain attributes (``PLAIN_ATTRIBUTES``) on the live session in one
        statement, bumping its version, and return the row as written.

        None when nothing was written: the session is missing, not live, not
        at ``version`` (when given), already holds every value, or holds an
        e-mail address SQL cannot compare as Python does. The caller then
        reads the session and judges it. A new e-mail address (not the same
        one in other case) resets the verification, as ``EMAIL_VERIFICATION_RESET`` says.
        """
        if not patchable_in_place(values):
            raise ValueError(f"not set in place (see patchable_in_place): {sorted(values)}")
        email = values.get("email")
        statement = _patch_in_place(frozenset(values), version is not None)
        parameters = {**values, "identity": user_session_uuid, "now": now, "email_key": (email or "").lower()}
        if version is not None:
            parameters["expected_version"] = version
        return self._write(statement, user_session_uuid, parameters)

    def _write(self, statement: PreparedStatement, user_session_uuid: uuid.UUID, parameters: Mapping[str, Any]) -> Any:
        """Run a one-row ``UPDATE … RETURNING``; the cached copy is invalidated
        at commit: right after the statement, outside a unit of work."""
        if in_unit_of_work(self.db_session):
            row = self.db_session.execute(statement.statement.execution_options(**RECORDED), parameters).first()
            if row is not None:
                record_write(self.db_session, user_session_uuid, row.version)
            return row
        row = statement.first(self.db_session.get_bind(), parameters)
        if row is not None:
            invalidate_committed({user_session_uuid: row.version})
        return row

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
            .execution_options(synchronize_session=False, **RECORDED)
        )
        row = self.db_session.execute(statement).first()
        if row is None:
            return None
        code_hash, email, attempts, max_attempts, version = row
        assert code_hash is not None  # the WHERE clause requires it
        record_write(self.db_session, user_session_uuid, version)
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
            .execution_options(synchronize_session=False, **RECORDED)
        )
        version = self.db_session.execute(statement).scalar()
        if version is not None:
            record_write(self.db_session, user_session_uuid, version)
