"""Repositories: collection-like access to models. They add, query and flush;
they never commit (the unit of work in ``get_db_session()`` does)."""

from service.repositories.base_repository import BaseRepository
from service.repositories.conversation_item_repository import ConversationItemRepository, ItemFilters
from service.repositories.factory import (
    get_conversation_item_repository,
    get_idempotency_repository,
    get_user_session_repository,
)
from service.repositories.idempotency_repository import IdempotencyRepository, IdempotencyScope
from service.repositories.query import Keyset, ListQuery, Page, SortOrder
from service.repositories.user_session_filters import DeletedFilter, UserSessionFilters
from service.repositories.user_session_repository import UserSessionRepository

__all__ = [
    "BaseRepository",
    "ConversationItemRepository",
    "DeletedFilter",
    "IdempotencyRepository",
    "IdempotencyScope",
    "ItemFilters",
    "Keyset",
    "ListQuery",
    "Page",
    "SortOrder",
    "UserSessionFilters",
    "UserSessionRepository",
    "get_conversation_item_repository",
    "get_idempotency_repository",
    "get_user_session_repository",
]
