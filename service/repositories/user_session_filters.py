"""What a listing of user sessions can filter on, and its SQL.

A filter names an attribute of ``UserSession`` and how it must match a value
(``Match``); the HTTP layer declares which parameter is which filter. The SQL
of a set of filters depends only on its shape (which attributes, how they
match, not their values), so it is built once per shape with every value
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
from sqlalchemy.orm import InstrumentedAttribute

from service.database import UTCDateTime
from service.models import UserSession


class Match(enum.StrEnum):
    """How a session's attribute must match a filter's value."""

    EQUALS = "equals"
    # lower(attribute) = lower(value): an index on lower(attribute) serves it.
    EQUALS_IGNORING_CASE = "equals_ignoring_case"
    # The value is a boolean: true, the attribute is set; false, it is null.
    IS_SET = "is_set"
    AFTER = "after"
    BEFORE = "before"


class DeletedFilter(enum.StrEnum):
    """Which sessions a listing shows; an expired session counts as deleted."""

    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


@dataclass(frozen=True)
class Filter:
    """Sessions whose ``attribute`` matches ``value`` as ``match`` says; ``name``
    is what the listing calls it (its parameter)."""

    name: str
    attribute: str
    match: Match
    value: Any


@dataclass(frozen=True)
class UserSessionFilters:
    """What a listing of user sessions asks for: every filter holds (ANDed).

    ``metadata`` pairs a top-level key with a string: a session matches when
    its metadata holds exactly that JSON string under that key (a number,
    boolean, null, object or array never equals a string).
    """

    filters: tuple[Filter, ...] = ()
    deleted: DeletedFilter = DeletedFilter.EXCLUDE
    metadata: tuple[tuple[str, str], ...] = ()


class FilterShape(NamedTuple):
    """What decides the SQL of a listing's filters: not their values (but an
    ``IS_SET`` filter's, which picks ``IS NULL`` or ``IS NOT NULL``)."""

    dialect: str
    filters: tuple[tuple[str, Match, bool | None], ...]
    deleted: DeletedFilter
    metadata_pairs: int

    @classmethod
    def of(cls, filters: UserSessionFilters, dialect: str) -> FilterShape:
        return cls(
            dialect,
            tuple(
                (each.attribute, each.match, bool(each.value) if each.match is Match.IS_SET else None)
                for each in filters.filters
            ),
            filters.deleted,
            len(filters.metadata),
        )


# Few: the statements built from them are kept, within a budget, by ``StatementCache``.
@functools.lru_cache(maxsize=32)
def criteria_of(shape: FilterShape) -> tuple[ColumnElement[bool], ...]:
    """The criteria of a filter shape, their values left to bound parameters
    (named as in ``parameters_of``)."""
    criteria = [_matches(index, *entry) for index, entry in enumerate(shape.filters)]
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
    for index, each in enumerate(filters.filters):
        parameters[f"filter_{index}"] = each.value
    for index, (key, value) in enumerate(filters.metadata):
        parameters[f"metadata_key_{index}"] = key
        parameters[f"metadata_value_{index}"] = value
        parameters[f"metadata_pair_{index}"] = {key: value}
    return parameters


def _matches(index: int, attribute: str, match: Match, is_set: bool | None) -> ColumnElement[bool]:
    column: InstrumentedAttribute[Any] = getattr(UserSession, attribute)
    value = bindparam(f"filter_{index}", type_=column.type)
    if match is Match.EQUALS:
        return column == value
    if match is Match.EQUALS_IGNORING_CASE:
        # The same expression as an index on lower(attribute), so that index serves it.
        return func.lower(column) == func.lower(bindparam(f"filter_{index}", type_=String()))
    if match is Match.IS_SET:
        return column.is_not(None) if is_set else column.is_(None)
    if match is Match.AFTER:
        return column > value
    return column < value


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
