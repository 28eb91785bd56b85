"""``UserSessionRepository``: user sessions, with soft delete and expiry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import update

from service.database import utcnow
from service.models import UserSession
from service.repositories.base_repository import BaseRepository


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
        version counter does not see Core UPDATEs.
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
            )
            .execution_options(synchronize_session=False)
        )
        row = self.db_session.execute(statement).first()
        if row is None:
            return None
        code_hash, email, attempts, max_attempts = row
        assert code_hash is not None  # the WHERE clause requires it
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
            .execution_options(synchronize_session=False)
        )
        self.db_session.execute(statement)
