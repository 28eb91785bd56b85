"""Idempotency keys: a retried request runs once and gets the first answer again.

The database arbitrates, so this holds across workers and instances:

1. ``claim`` inserts an in-flight record in a transaction of its own and
   commits it before any work runs. The record's primary key is the key's
   scope, so of several concurrent requests with one key exactly one insert
   succeeds; the others find its record and get its stored response (done),
   a conflict (still in flight) or a mismatch (another body).
2. ``perform`` runs the work and completes the record in one unit of work:
   the work's effects and the stored response commit together or not at all.
   A request that fails validation or the database leaves no record behind.
3. A worker that dies mid-request leaves an in-flight record whose work was
   rolled back with its connection. The record holds a lease (``LEASE``);
   once it has run out, a retry takes the record over. Completion is fenced
   by the owner's token: a request that outlived its lease and was taken
   over cannot complete, and its work is rolled back, so the key's effects
   still happen once.

Records older than ``RETENTION`` count as absent (a new request replaces
them) and ``forget_expired`` deletes them. A done record names the session
its stored response carries (``user_session_uuid``): erasing the session
erases the record with it (``forget_user_sessions``), in the same unit of work.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from service.database import get_db_session, utcnow
from service.errors import ServiceError
from service.models import IN_FLIGHT, IdempotencyRecord
from service.repositories import IdempotencyScope, get_idempotency_repository

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=24)
# Longer than any request may run (gunicorn's worker timeout is 30 s).
LEASE = timedelta(seconds=60)
FORGET_BATCH_SIZE = 1000
_CLAIM_ROUNDS = 3

ResultT = TypeVar("ResultT")


class IdempotencyKeyInUse(ServiceError):
    status, code = 409, "IDEMPOTENCY_KEY_IN_USE"
    detail = "A request with this Idempotency-Key is still in flight; retry once it has finished."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class IdempotencyKeyReused(ServiceError):
    status, code = 422, "IDEMPOTENCY_KEY_REUSED"
    detail = "This Idempotency-Key was used with a different request body; use a new key for a new request."


@dataclass(frozen=True)
class StoredResponse:
    """The part of a response a replay repeats, and the session it carries
    (whose erasure erases it)."""

    status: int
    headers: dict[str, str]
    body: bytes
    user_session_uuid: uuid.UUID | None = None

    @classmethod
    def of(cls, record: IdempotencyRecord) -> StoredResponse:
        return cls(
            record.response_status or 500,
            dict(record.response_headers or {}),
            record.response_body or b"",
            record.user_session_uuid,
        )

    def columns(self) -> dict[str, Any]:
        return {
            "response_status": self.status,
            "response_headers": self.headers,
            "response_body": self.body,
            "user_session_uuid": self.user_session_uuid,
        }


@dataclass(frozen=True)
class Claim:
    """Ownership of a key's in-flight record, proven by ``owner_token``."""

    scope: IdempotencyScope
    owner_token: str


def claim(scope: IdempotencyScope, fingerprint: str) -> Claim | StoredResponse:
    """Own the record of ``scope``, or get the response it already holds.

    Raises ``IdempotencyKeyReused`` when the record was made for another body
    and ``IdempotencyKeyInUse`` while its owner is still at work.
    """
    for _ in range(_CLAIM_ROUNDS):
        owner_token = uuid.uuid4().hex
        claimed = _in_flight(scope, fingerprint, owner_token, utcnow())
        try:
            with get_db_session() as db_session:
                get_idempotency_repository(db_session).create(claimed)
            db_session.expunge(claimed)  # the claim is the token, not the object
            return Claim(scope, owner_token)
        except IntegrityError:
            pass  # the key has a record: look at it
        with get_db_session() as db_session:
            repository = get_idempotency_repository(db_session)
            record = repository.get_by_scope(scope, for_update=True)
            if record is None:
                continue  # released meanwhile: insert again
            try:
                now = utcnow()
                if _abandoned(record, now):
                    fresh = _in_flight(scope, fingerprint, owner_token, now)
                    repository.update(record, {column: getattr(fresh, column) for column in _RECLAIMED_COLUMNS})
                    return Claim(scope, owner_token)
                if record.request_fingerprint != fingerprint:
                    raise IdempotencyKeyReused()
                if record.state == IN_FLIGHT:
                    raise IdempotencyKeyInUse()
                return StoredResponse.of(record)
            finally:
                db_session.expunge(record)
    raise IdempotencyKeyInUse()


def perform(
    owned: Claim,
    work: Callable[[], ResultT],
    stored_response: Callable[[ResultT], StoredResponse | None],
) -> ResultT:
    """Run ``work`` and settle the claim in one unit of work.

    ``stored_response`` says what to remember of the result, or None to
    forget the key (the record is deleted, so the request can be retried).
    The use cases ``work`` calls run nested in this unit of work.
    """
    try:
        with get_db_session() as db_session:
            result = work()
            stored = stored_response(result)
            repository = get_idempotency_repository(db_session)
            if stored is None:
                repository.release(owned.scope, owned.owner_token)
            elif not repository.complete(owned.scope, owned.owner_token, stored.columns()):
                # Outlived the lease and was taken over: undo the work, the new owner does it.
                raise IdempotencyKeyInUse()
            return result
    except BaseException:
        # The work was rolled back with the transaction: let a retry run it.
        # (Releasing is conditional on the token, so a lost claim stays lost.)
        _release_quietly(owned)
        raise


def forget_user_sessions(user_session_uuids: Collection[uuid.UUID]) -> int:
    """Delete the records whose stored responses carry these sessions (erased
    ones): in the caller's unit of work when there is one. Returns how many went."""
    if not user_session_uuids:
        return 0
    with get_db_session() as db_session:
        return get_idempotency_repository(db_session).delete_for_user_sessions(user_session_uuids)


def forget_expired(now: datetime | None = None) -> int:
    """Delete records past their retention, in batches; return how many went."""
    cutoff = (now or utcnow()) - RETENTION
    forgotten = 0
    while True:
        with get_db_session() as db_session:
            deleted = get_idempotency_repository(db_session).delete_created_before(cutoff, limit=FORGET_BATCH_SIZE)
        forgotten += deleted
        if deleted < FORGET_BATCH_SIZE:
            return forgotten


_RECLAIMED_COLUMNS = (
    "request_fingerprint",
    "state",
    "owner_token",
    "created_at",
    "lease_expires_at",
    "response_status",
    "response_headers",
    "response_body",
    "user_session_uuid",
)


def _in_flight(scope: IdempotencyScope, fingerprint: str, owner_token: str, now: datetime) -> IdempotencyRecord:
    return IdempotencyRecord(
        **scope._asdict(),
        request_fingerprint=fingerprint,
        state=IN_FLIGHT,
        owner_token=owner_token,
        created_at=now,
        lease_expires_at=now + LEASE,
        response_status=None,
        response_headers=None,
        response_body=None,
        user_session_uuid=None,
    )


def _abandoned(record: IdempotencyRecord, now: datetime) -> bool:
    """Past retention, or in flight past its lease: the record counts as absent."""
    if record.created_at <= now - RETENTION:
        return True
    return record.state == IN_FLIGHT and record.lease_expires_at <= now


def _release_quietly(owned: Claim) -> None:
    try:
        with get_db_session() as db_session:
            get_idempotency_repository(db_session).release(owned.scope, owned.owner_token)
    except SQLAlchemyError:
        log.warning("could not release an idempotency record; a retry may take it over when its lease runs out")
