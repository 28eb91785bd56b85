"""Use cases of user sessions: one unit of work each, or one statement that
commits by itself.

Views call these with validated input (``ttl_seconds`` already turned into
``expires_at``); these work through the repository and raise domain errors.
Every one returns the session as a ``UserSessionRow``. Nothing here knows HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from service.database import get_db_session, one_statement, utcnow
from service.errors import (
    PreconditionFailed,
    RequestValidationError,
    UserSessionAlreadyExists,
    UserSessionIsLive,
    UserSessionNotFound,
)
from service.models import UserSession, UserSessionRow
from service.operations import idempotency
from service.operations.documents import METADATA_BOUNDS, canonical, merge_patch
from service.repositories import (
    Keyset,
    Page,
    SortOrder,
    UserSessionFilters,
    UserSessionRepository,
    get_user_session_repository,
)
from service.repositories.user_session_updates import EMAIL_VERIFICATION_RESET


@dataclass(frozen=True)
class VersionPrecondition:
    """What an ``If-Match`` header allows: any live version, or these versions."""

    versions: frozenset[int] = frozenset()
    any_version: bool = False

    def check(self, user_session: UserSession | UserSessionRow) -> None:
        """Raise ``PreconditionFailed`` unless the session's ``version`` is allowed."""
        if not (self.any_version or user_session.version in self.versions):
            raise PreconditionFailed()


def create_user_session(fields: Mapping[str, Any]) -> UserSessionRow:
    """Store a new session and return it as stored; a uuid that exists already
    (even deleted) is a conflict.

    The insert is one statement: on its own it needs no unit of work, and
    inside one (an idempotent request's) it is part of it.
    """
    values = dict(fields)
    if values.get("metadata_") is None:
        values["metadata_"] = {}
    now = utcnow()
    try:
        with one_statement() as db_session:
            return get_user_session_repository(db_session).insert({**values, "created_at": now, "updated_at": now})
    except IntegrityError:
        raise UserSessionAlreadyExists() from None


def read_user_session(user_session_uuid: uuid.UUID, *, include_deleted: bool = False) -> UserSessionRow:
    """The session, or ``UserSessionNotFound`` when it is missing, deleted or expired.

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
) -> Page[UserSessionRow]:
    """One page of the sessions that match ``filters``, after ``after`` in ``sort`` order.

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
) -> UserSessionRow:
    """Apply a merge patch; a patch that changes nothing writes nothing.

    It takes the first of these paths that applies; each falls to the next:

    ==================  =============================================  ==========================
    path                taken when                                      costs
    ==================  =============================================  ==========================
    1. in place         plain fields only (no ``metadata``, which       one UPDATE … RETURNING
                        merges), and ``If-Match`` absent, ``*`` or
                        one version; applies only if a value differs
    2. read, then       path 1 did not apply or wrote nothing: the      a read, then one UPDATE
       conditional      patch is worked out on the session as read;     conditional on the
       write            nothing to change answers it as read            version read
    3. under a lock     the session changed between path 2's read       a unit of work: SELECT …
                        and write                                       FOR UPDATE, then UPDATE
    ==================  =============================================  ==========================

    No concurrent writer's update is ever lost: paths 1 and 2 write only the
    row they judged, path 3 holds the row's lock.
    """
    repository = get_user_session_repository()
    if precondition is None or precondition.any_version or len(precondition.versions) == 1:
        version = None if precondition is None or precondition.any_version else next(iter(precondition.versions))
        written = repository.patch_in_place(user_session_uuid, patch, version=version, now=utcnow())
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
        return UserSessionRow.of(user_session)


def delete_user_session(user_session_uuid: uuid.UUID, *, precondition: VersionPrecondition | None = None) -> None:
    """Soft delete: the session disappears but can be restored until purged."""
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        repository.soft_delete(user_session, now=utcnow())


def purge_user_session(user_session_uuid: uuid.UUID, *, precondition: VersionPrecondition | None = None) -> None:
    """Erase the session for good, whether it is live, deleted or expired: its
    conversation items (the database cascades) and the stored idempotent
    responses that carry its data go with it."""
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, include_deleted=True, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        repository.purge(user_session)
        idempotency.forget_user_sessions([user_session_uuid])


def restore_user_session(
    user_session_uuid: uuid.UUID, *, precondition: VersionPrecondition | None = None
) -> UserSessionRow:
    """Bring back a soft-deleted or expired session; a live one is a conflict."""
    with get_db_session() as db_session:
        repository = get_user_session_repository(db_session)
        user_session = _find(repository, user_session_uuid, include_deleted=True, for_update=True)
        if precondition is not None:
            precondition.check(user_session)
        now = utcnow()
        if user_session.is_live(now):
            raise UserSessionIsLive()
        return UserSessionRow.of(repository.restore(user_session, now=now))


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


def _changes(user_session: UserSession | UserSessionRow, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes whose value the patch really changes."""
    changes: dict[str, Any] = {}
    for attribute, value in patch.items():
        current = getattr(user_session, attribute)
        if attribute == "metadata_":
            value = {} if value is None else merge_patch(current, value)
            violation = METADATA_BOUNDS.violation(value)
            if violation is not None:
                raise RequestValidationError(errors={"metadata": [violation]})
            if canonical(value) != canonical(current):
                changes[attribute] = value
        elif value != current:
            changes[attribute] = value
    if "email" in changes and (changes["email"] or "").lower() != (user_session.email or "").lower():
        # A verification speaks for one address: a new one starts unverified,
        # and a code sent to the old one no longer counts.
        changes.update(EMAIL_VERIFICATION_RESET)
    return changes
