"""Factory functions: the one place that decides which session a repository uses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.extensions import db
from service.repositories.conversation_item_repository import ConversationItemRepository
from service.repositories.idempotency_repository import IdempotencyRepository
from service.repositories.user_session_repository import UserSessionRepository


def get_user_session_repository(db_session: Session | None = None) -> UserSessionRepository:
    """A ``UserSessionRepository`` on ``db_session``, by default the request's ``db.session``."""
    return UserSessionRepository(db.session() if db_session is None else db_session)


def get_idempotency_repository(db_session: Session | None = None) -> IdempotencyRepository:
    """An ``IdempotencyRepository`` on ``db_session``, by default the request's ``db.session``."""
    return IdempotencyRepository(db.session() if db_session is None else db_session)


def get_conversation_item_repository(db_session: Session | None = None) -> ConversationItemRepository:
    """A ``ConversationItemRepository`` on ``db_session``, by default the request's ``db.session``."""
    return ConversationItemRepository(db.session() if db_session is None else db_session)
