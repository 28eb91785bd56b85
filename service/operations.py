"""Use cases: one unit of work each.

Views call these with validated input; these open ``get_db_session()``, work
through repositories and raise domain errors. Nothing here knows HTTP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from service.database import get_db_session, one_statement, utcnow
from service.errors import (
    PreconditionFailed,
    RequestValidationError,
    UserSessionAlreadyExists,
    UserSessionIsLive,
    UserSessionNotFound,
)
from service.models import UserSession
from service.repositories import (
    Keyset,
    Page,
    SortOrder,
    UserSessionFilters,
    UserSessionRepository,
    get_user_session_repository,
)
from service.repositories.user_session_repository import EMAIL_VERIFICATION_RESET, patchable_in_place
from service.schemas import metadata_field, resolve_ttl

_METADATA = metadata_field()


@dataclass(frozen=True)
class VersionPrecondition:
    """What an ``If-Match`` header allows: any live version, or these versions."""

    versions: frozenset[int] = frozenset()
    any_version: bool = False

    def check(self, user_session: Any) -> None:
        """Raise ``PreconditionFailed`` unless the session's ``version`` is allowed."""
        if not (self.any_version or user_session.version in self.versions):
            raise PreconditionFailed()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _canonical(value: Any) -> str:
    # JSON equality, not Python's: ``1 == True`` but they are different JSON values.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def create_user_session(fields: Mapping[str, Any]) -> Any:
    """Store a new session and return it as stored (a read-only named tuple with a
    ``UserSession``'s attributes); a uuid that exists already (even deleted) is a conflict.

    The insert is one statement: on its own it needs no unit of work, and
    inside one (an idempotent request's) it is part of it.
    """
    values = resolve_ttl(dict(fields))
    if values.get("metadata_") is None:
        values["metadata_"] = {}
    now = utcnow()
    try:
        with one_statement() as db_session:
            return get_user_session_repository(db_session).insert_row({**values, "created_at": now, "updated_at": now})
    except IntegrityError:
        raise UserSessionAlreadyExists() from None


def read_user_session(user_session_uuid: uuid.UUID, *, include_deleted: bool = False) -> Any:
    """The session as a read-only named tuple with a ``UserSession``'s attributes, or
    ``UserSessionNotFound`` when it is missing, deleted or expired.

    A read needs no unit of work: it writes nothing, and runs as one statement.
    """
    row = get_user_session_repository().read_by_uuid(user_session_uuid, include_deleted=include_deleted)
    if row is None:
        raise UserSessionNotFound()
    return row


def list_user_sessions(
    filters: UserSessionFilters,
    *,
    sort: SortOrder,
    limit: int,
    after: Keyset | None = None,
    with_count: bool = False,
) -> Page[Any]:
    """One page of the sessions that match ``filters``, after ``after`` in ``sort`` order,
    as read-only rows with the attributes of a ``UserSession``.

    Like a read of one session, it needs no unit of work: the page is one
    statement, and the count, when asked for, another.
    """
    return get_user_session_repository().list_page(
        filters, sort=sort, limit=limit, after=after, with_count=with_count, now=utcnow()
    )


def patch_user_session(
    user_session_uuid: uuid.UUID,
    patch: Mapping[str, Any],
    *,
    precondition: VersionPrecondition | None = None,
) -> Any:
    """Apply a merge patch; a patch that changes nothing writes nothing.

    Returns the session as written (or as read, for a patch that changes
    nothing), as a ``UserSession`` or a read-only row with its attributes.

    A patch of plain values is first tried as one UPDATE that applies only
    when it changes something (and ``precondition`` holds): the common case
    costs one statement. Otherwise, or when that UPDATE wrote nothing, the
    patch is worked out against the session as read, then written by an
    UPDATE conditional on that version: two statements, no transaction to
    open. Should the session change in between, the patch is worked out
    again under a row lock, so no concurrent writer's update is ever lost.
    """
    patch = resolve_ttl(dict(patch))
    repository = get_user_session_repository()
    expected_version = _in_place_version(patch, precondition)
    if expected_version is not False:
        written = repository.patch_in_place(user_session_uuid, patch, version=expected_version, now=utcnow())
        if written is not None:
            return written
    current = repository.read_by_uuid(user_session_uuid)
    if current is None:
        raise UserSessionNotFound()
    if precondition is not None:
        precondition.check(current)
    changes = _changes(current, patch)
    if not changes:
        return current
    now = utcnow()
    written = repository.update_if_unchanged(
        user_session_uuid, current.version, {**changes, "updated_at": now}, now=now
    )
    if written is not None:
        return written
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        changes = _changes(user_session, patch)
        if changes:
            changes["updated_at"] = utcnow()
            repository.update(user_session, changes)
        return user_session


def delete_user_session(user_session_uuid: uuid.UUID, *, precondition: VersionPrecondition | None = None) -> None:
    """Soft delete: the session disappears but can be restored until purged."""
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        repository.soft_delete(user_session, now=utcnow())


def purge_user_session(user_session_uuid: uuid.UUID, *, precondition: VersionPrecondition | None = None) -> None:
    """Erase the session for good, whether it is live, deleted or expired."""
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, include_deleted=True, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        repository.purge(user_session)


def restore_user_session(
    user_session_uuid: uuid.UUID, *, precondition: VersionPrecondition | None = None
) -> UserSession:
    """Bring back a soft-deleted or expired session; a live one is a conflict."""
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, include_deleted=True, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        now = utcnow()
        if user_session.is_live(now):
            raise UserSessionIsLive()
        return repository.restore(user_session, now=now)


def _find(
    repository: UserSessionRepository,
    user_session_uuid: uuid.UUID,
    *,
    include_deleted: bool = False,
    for_update: bool = False,
) -> UserSession:
    user_session = repository.get_by_uuid(user_session_uuid, include_deleted=include_deleted, for_update=for_update)
    if user_session is None:
        raise UserSessionNotFound()
    return user_session


def _in_place_version(
    patch: Mapping[str, Any], precondition: VersionPrecondition | None
) -> int | Literal[False] | None:
    """Whether ``patch_in_place`` can apply ``patch``: False if not, else the
    version it must find (None: any). ``If-Match`` may name one version at most."""
    if not patchable_in_place(patch):
        return False
    if precondition is None or precondition.any_version:
        return None
    if len(precondition.versions) == 1:
        return next(iter(precondition.versions))
    return False


def _changes(user_session: Any, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes whose value the patch really changes."""
    changes: dict[str, Any] = {}
    for attribute, value in patch.items():
        current = getattr(user_session, attribute)
        if attribute == "metadata_":
            value = {} if value is None else merge_patch(current, value)
            try:
                _METADATA.check(value)
            except ValidationError as error:
                raise RequestValidationError(errors={"metadata": list(error.messages)}) from None
            if _canonical(value) != _canonical(current):
                changes[attribute] = value
        elif value != current:
            changes[attribute] = value
    if "email" in changes and (changes["email"] or "").lower() != (user_session.email or "").lower():
        # A verification speaks for one address: a new one starts unverified,
        # and a code sent to the old one no longer counts.
        changes.update(EMAIL_VERIFICATION_RESET)
    return changes
