"""``IdempotencyRepository``: idempotency records, claimed and completed by their owner."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import CursorResult, delete, select, tuple_, update

from service.models import DONE, IN_FLIGHT, IdempotencyRecord
from service.repositories.base_repository import BaseRepository


class IdempotencyScope(NamedTuple):
    """What an ``Idempotency-Key`` is unique within: the record's primary key."""

    api_key_identity: str
    method: str
    path: str
    idempotency_key: str


class IdempotencyRepository(BaseRepository[IdempotencyRecord]):
    """Idempotency records by scope. Writes that an owner makes are conditional
    on its ``owner_token``, so a request that lost its record changes nothing."""

    model = IdempotencyRecord

    def get_by_scope(self, scope: IdempotencyScope, *, for_update: bool = False) -> IdempotencyRecord | None:
        return self.get_by_id(tuple(scope), for_update=for_update)

    def complete(self, scope: IdempotencyScope, owner_token: str, response: Mapping[str, Any]) -> bool:
        """Store the response of the owner's request; False when it owns the record no more."""
        statement = (
            update(IdempotencyRecord)
            .where(*self._owned_by(scope, owner_token))
            .values(state=DONE, **response)
            .execution_options(synchronize_session=False)
        )
        result: CursorResult[Any] = self.db_session.execute(statement)  # type: ignore[assignment]
        return result.rowcount == 1

    def release(self, scope: IdempotencyScope, owner_token: str) -> bool:
        """Forget the owner's in-flight record, so the key can be used again."""
        statement = (
            delete(IdempotencyRecord)
            .where(*self._owned_by(scope, owner_token))
            .execution_options(synchronize_session=False)
        )
        result: CursorResult[Any] = self.db_session.execute(statement)  # type: ignore[assignment]
        return result.rowcount == 1

    def delete_for_user_sessions(self, user_session_uuids: Collection[uuid.UUID]) -> int:
        """Delete the records whose stored responses carry these sessions; return how many went."""
        statement = (
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.user_session_uuid.in_(list(user_session_uuids)))
            .execution_options(synchronize_session=False)
        )
        result: CursorResult[Any] = self.db_session.execute(statement)  # type: ignore[assignment]
        return result.rowcount

    def delete_created_before(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` records created before ``cutoff``; return how many went."""
        scope_columns = tuple_(
            IdempotencyRecord.api_key_identity,
            IdempotencyRecord.method,
            IdempotencyRecord.path,
            IdempotencyRecord.idempotency_key,
        )
        batch = (
            select(
                IdempotencyRecord.api_key_identity,
                IdempotencyRecord.method,
                IdempotencyRecord.path,
                IdempotencyRecord.idempotency_key,
            )
            .where(IdempotencyRecord.created_at < cutoff)
            .limit(limit)
        )
        statement = (
            delete(IdempotencyRecord).where(scope_columns.in_(batch)).execution_options(synchronize_session=False)
        )
        result: CursorResult[Any] = self.db_session.execute(statement)  # type: ignore[assignment]
        return result.rowcount

    @staticmethod
    def _owned_by(scope: IdempotencyScope, owner_token: str) -> tuple[Any, ...]:
        return (
            IdempotencyRecord.api_key_identity == scope.api_key_identity,
            IdempotencyRecord.method == scope.method,
            IdempotencyRecord.path == scope.path,
            IdempotencyRecord.idempotency_key == scope.idempotency_key,
            IdempotencyRecord.owner_token == owner_token,
            IdempotencyRecord.state == IN_FLIGHT,
        )
