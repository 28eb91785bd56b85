"""``UserSessionRepository``: user sessions, with soft delete and expiry."""

from __future__ import annotations

import uuid
from datetime import datetime

from service.database import utcnow
from service.models import UserSession
from service.repositories.base_repository import BaseRepository


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
