"""First-party Python client of the user-sessions service.

Its own distribution (``pip install ./clients/python``), depending on
``requests`` only, so any program can use it without the service::

    from user_sessions_client import UserSessionsClient

    with UserSessionsClient("http://user-sessions:8000", api_key="…") as sessions:
        created = sessions.create(email="ada@example.com", metadata={"step": 1})
        updated = sessions.update(created, metadata={"step": 2})  # If-Match: created's version
        page = sessions.list_page(email="ada@example.com", limit=20, count=True)
        for user_session in sessions.iter_sessions(email="ada@example.com"):
            ...
        sessions.append_items(created, [{"role": "user", "content": {"role": "user", "content": "Hi"}}])
        history = list(sessions.iter_items(created))  # oldest first; order="desc" for newest first

``user_sessions_client.agents.UserSessionsAgentSession`` (the ``agents`` extra)
is an OpenAI Agents SDK session that keeps its history in the service.
"""

from user_sessions_client.client import (
    FROM_SESSION,
    MAX_ITEMS_PER_APPEND,
    ItemOrder,
    ItemRef,
    SessionRef,
    UserSessionsClient,
)
from user_sessions_client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    Gone,
    IdempotencyKeyInUse,
    IncorrectVerificationCode,
    InvalidRequest,
    ItemNotFound,
    NotFound,
    PreconditionFailed,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UserSessionsError,
)
from user_sessions_client.schemas import (
    ConversationItem,
    ConversationItemIn,
    ConversationItemPage,
    ListFilters,
    Problem,
    UserSession,
    UserSessionCreate,
    UserSessionPage,
    UserSessionPatch,
    VerificationCodeIncorrect,
    VerificationCodeIssued,
    VerificationResult,
)

__version__ = "1.1.0"

__all__ = [
    "FROM_SESSION",
    "MAX_ITEMS_PER_APPEND",
    "ClientError",
    "Conflict",
    "ConversationItem",
    "ConversationItemIn",
    "ConversationItemPage",
    "Forbidden",
    "Gone",
    "IdempotencyKeyInUse",
    "IncorrectVerificationCode",
    "InvalidRequest",
    "ItemNotFound",
    "ItemOrder",
    "ItemRef",
    "ListFilters",
    "NotFound",
    "PreconditionFailed",
    "Problem",
    "RateLimited",
    "ServiceUnavailable",
    "SessionRef",
    "TransportError",
    "Unauthorized",
    "UserSession",
    "UserSessionCreate",
    "UserSessionPage",
    "UserSessionPatch",
    "UserSessionsClient",
    "UserSessionsError",
    "VerificationCodeIncorrect",
    "VerificationCodeIssued",
    "VerificationResult",
    "__version__",
]
