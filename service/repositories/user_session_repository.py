"""``UserSessionRepository``: user sessions, with soft delete and expiry."""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    bindparam,
    exists,
    func,
    inspect,
    literal,
    not_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute

from service.cache_invalidation import RECORDED, invalidate_committed, record_write
from service.database import UTCDateTime, in_unit_of_work, utcnow
from service.models import UserSession
from service.repositories.base_repository import BaseRepository
from service.repositories.prepared import PreparedStatement
from service.repositories.query import Keyset, ListQuery, Page, SortOrder, attribute_columns


class DeletedFilter(enum.StrEnum):
    """Which sessions a listing shows; an expired session counts as deleted."""

    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


@dataclass(frozen=True)
class UserSessionFilters:
    """What a listing of user sessions asks for; None means "any".

    ``metadata`` pairs a top-level key with a string: a session matches when
    its metadata holds exactly that JSON string under that key (a number,
    boolean, null, object or array never equals a string). Pairs are ANDed.
    """

    email: str | None = None
    is_email_verified: bool | None = None
    consent_user_data: bool | None = None
    completed: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    deleted: DeletedFilter = DeletedFilter.EXCLUDE
    metadata: tuple[tuple[str, str], ...] = ()


_READ_LIVE = PreparedStatement(
    select(*attribute_columns(UserSession)).where(
        UserSession.uuid == bindparam("identity"), UserSession.live_clause(bindparam("now", type_=UTCDateTime()))
    ),
    "UserSessionRow",
)


@functools.cache
def _update_if_unchanged(attributes: frozenset[str]) -> PreparedStatement:
    """``UPDATE … RETURNING`` of these attributes, conditional on the version read."""
    table: Table = UserSession.__table__  # type: ignore[assignment]
    mapper = inspect(UserSession)
    values: dict[Any, Any] = {
        table.c[mapper.attrs[attribute].columns[0].name]: bindparam(attribute) for attribute in sorted(attributes)
    }
    values[table.c.version] = table.c.version + 1
    statement = (
        update(table)
        .where(
            table.c.uuid == bindparam("identity"),
            table.c.version == bindparam("expected_version"),
            UserSession.live_clause(bindparam("now", type_=UTCDateTime())),
        )
        .values(values)
        .returning(*attribute_columns(UserSession))
    )
    return PreparedStatement(statement, "UserSessionRow")


class _FilterShape(NamedTuple):
    """What decides the SQL of a listing's filters: which are given, not their values."""

    dialect: str
    email: bool
    is_email_verified: bool
    consent_user_data: bool
    completed: bool | None
    created_after: bool
    created_before: bool
    updated_after: bool
    updated_before: bool
    deleted: DeletedFilter
    metadata_pairs: int

    @classmethod
    def of(cls, filters: UserSessionFilters, dialect: str) -> _FilterShape:
        return cls(
            dialect,
            filters.email is not None,
            filters.is_email_verified is not None,
            filters.consent_user_data is not None,
            filters.completed,
            filters.created_after is not None,
            filters.created_before is not None,
            filters.updated_after is not None,
            filters.updated_before is not None,
            filters.deleted,
            len(filters.metadata),
        )


_RANGES = (
    ("created_after", UserSession.created_at, True),
    ("created_before", UserSession.created_at, False),
    ("updated_after", UserSession.updated_at, True),
    ("updated_before", UserSession.updated_at, False),
)


@functools.lru_cache(maxsize=256)
def _criteria(shape: _FilterShape) -> tuple[ColumnElement[bool], ...]:
    """The criteria of a filter shape, their values left to bound parameters
    (named as in ``_filter_parameters``)."""
    criteria: list[ColumnElement[bool]] = []
    if shape.email:
        # The same expression as ix_user_sessions_lower_email, so the index serves it.
        criteria.append(func.lower(UserSession.email) == func.lower(bindparam("email", type_=String())))
    if shape.is_email_verified:
        criteria.append(UserSession.is_email_verified == bindparam("is_email_verified"))
    if shape.consent_user_data:
        criteria.append(UserSession.consent_user_data == bindparam("consent_user_data"))
    if shape.completed is not None:
        completed_at = UserSession.completed_at
        criteria.append(completed_at.is_not(None) if shape.completed else completed_at.is_(None))
    for name, column, after in _RANGES:
        if getattr(shape, name):
            bound = bindparam(name, type_=UTCDateTime())
            criteria.append(column > bound if after else column < bound)
    now = bindparam("now", type_=UTCDateTime())
    if shape.deleted is DeletedFilter.EXCLUDE:
        criteria.append(UserSession.live_clause(now))
    elif shape.deleted is DeletedFilter.ONLY:
        criteria.append(not_(UserSession.live_clause(now)))
    criteria.extend(_metadata_equals(shape.dialect, index) for index in range(shape.metadata_pairs))
    return tuple(criteria)


def _filter_parameters(filters: UserSessionFilters, now: datetime) -> dict[str, Any]:
    """The values the criteria of ``filters``' shape are run with."""
    parameters: dict[str, Any] = {"now": now}
    for name in ("email", "is_email_verified", "consent_user_data", *(name for name, _column, _after in _RANGES)):
        value = getattr(filters, name)
        if value is not None:
            parameters[name] = value
    for index, (key, value) in enumerate(filters.metadata):
        parameters[f"metadata_key_{index}"] = key
        parameters[f"metadata_value_{index}"] = value
        parameters[f"metadata_pair_{index}"] = {key: value}
    return parameters


def _metadata_equals(dialect: str, index: int) -> ColumnElement[bool]:
    """The top-level key ``metadata_key_{index}`` of ``metadata`` holds the JSON
    string ``metadata_value_{index}`` (``metadata_pair_{index}`` is the two as an object)."""
    if dialect == "postgresql":
        # JSONB containment, which the GIN index on metadata serves.
        return type_coerce(UserSession.metadata_, JSONB).contains(bindparam(f"metadata_pair_{index}", type_=JSONB))
    # Elsewhere (SQLite) the JSON functions: json_each names keys exactly,
    # whatever characters they hold, and says whether the value is a string.
    entry = func.json_each(UserSession.metadata_).table_valued("key", "type", "atom")
    return exists(
        select(literal(1))
        .select_from(entry)
        .where(
            entry.c.key == bindparam(f"metadata_key_{index}", type_=String()),
            entry.c.type == "text",
            entry.c.atom == bindparam(f"metadata_value_{index}", type_=String()),
        )
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
        shape = _FilterShape.of(filters, self.db_session.get_bind().dialect.name)
        return self.query().where(*_criteria(shape), **_filter_parameters(filters, now)).prepared(shape)

    def filter_criteria(self, filters: UserSessionFilters, *, now: datetime) -> list[ColumnElement[bool]]:
        """The SQL of ``filters``, one criterion each, to be ANDed, with their values in it."""
        shape = _FilterShape.of(filters, self.db_session.get_bind().dialect.name)
        parameters = _filter_parameters(filters, now)
        return [criterion.params(parameters) for criterion in _criteria(shape)]

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
