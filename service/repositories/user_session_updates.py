"""The UPDATE statements of a PATCH, built once per set of attributes.

Both set attributes from bound parameters of their names, bump the version
and return the row as written (``UserSessionRow``); both apply only to a
live session. ``update_if_unchanged`` also requires the version read;
``patch_in_place`` requires that something really changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, ColumnElement, Table, bindparam, case, func, inspect, literal, or_, update

from service.database import UTCDateTime
from service.models import UserSession, UserSessionRow
from service.repositories.changes import CHANGES_NOTED
from service.repositories.prepared import PreparedStatement
from service.repositories.query import attribute_columns
from service.repositories.text_functions import ascii_lower, is_printable_ascii, printable_ascii

# Attributes a patch sets to the value it sends, whatever the stored one: every
# column but JSON documents (``metadata`` merges into what is stored, so it is
# worked out on a read first). A patch of these alone is one statement.
PLAIN_ATTRIBUTES = frozenset(
    attribute.key for attribute in inspect(UserSession).column_attrs if not isinstance(attribute.columns[0].type, JSON)
)
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
    statement = (
        update(table)
        .where(*conditions)
        .values(values)
        .returning(*attribute_columns(UserSession))
        .execution_options(**CHANGES_NOTED)
    )
    return PreparedStatement(statement, UserSessionRow, changes_noted_by_caller=True)


@functools.cache
def update_if_unchanged_statement(attributes: frozenset[str]) -> PreparedStatement:
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
def patch_in_place_statement(attributes: frozenset[str], at_version: bool) -> PreparedStatement:
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
