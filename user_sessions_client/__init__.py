"""First-party Python client of the user-sessions service.

Depends on ``requests`` only (``pip install 'user-sessions-service[client]'``)
and never imports the service itself, so any service can use it::

    from user_sessions_client import UserSessionsClient

    with UserSessionsClient("http://user-sessions:8000", api_key="…") as sessions:
        created = sessions.create(email="ada@example.com", metadata={"step": 1})
        updated = sessions.update(created, metadata={"step": 2})  # If-Match from created's version
        for user_session in sessions.iter_sessions(email="ada@example.com"):
            ...
"""

from user_sessions_client.client import UserSessionsClient
from user_sessions_client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UserSessionsError,
)

__all__ = [
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "UserSessionsClient",
    "UserSessionsError",
]
