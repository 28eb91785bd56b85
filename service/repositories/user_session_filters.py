"""What a listing of user sessions can filter on, and its SQL.

The SQL of a set of filters depends only on its shape (which filters are
given, not their values), so it is built once per shape with every value
left to a bound parameter: a listing builds no SQL expressions of its own.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, bindparam, exists, func, literal, not_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from service.database import UTCDateTime
from service.models import UserSession


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


class FilterShape(NamedTuple):
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
    def of(cls, filters: UserSessionFilters, dialect: str) -> FilterShape:
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
def criteria_of(shape: FilterShape) -> tuple[ColumnElement[bool], ...]:
    """The criteria of a filter shape, their values left to bound parameters
    (named as in ``parameters_of``)."""
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


def parameters_of(filters: UserSessionFilters, now: datetime) -> dict[str, Any]:
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
