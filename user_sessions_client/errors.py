"""What the client raises: every failure answered by the service carries its problem body."""

from __future__ import annotations

from typing import Any


class UserSessionsError(Exception):
    """Base of every error the client raises."""


class TransportError(UserSessionsError):
    """The service could not be reached, or stopped answering, after every retry."""


class ClientError(UserSessionsError):
    """The service answered with an RFC 9457 problem (any status ≥ 400).

    ``problem`` is the parsed body; ``code``, ``detail``, ``errors`` and
    ``correlation_id`` are its members, for logs and for reporting a failure.
    """

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code: str | None = problem.get("code")
        self.detail: str | None = problem.get("detail")
        self.errors: dict[str, list[str]] = problem.get("errors") or {}
        self.correlation_id: str | None = problem.get("correlation_id")
        super().__init__(f"{status} {self.code}: {self.detail} (correlation id {self.correlation_id})")


class InvalidRequest(ClientError):
    """400, 413, 415 or 422: the request itself is wrong; ``errors`` names the fields."""


class Unauthorized(ClientError):
    """401: no valid API key."""


class Forbidden(ClientError):
    """403: the API key may only read."""


class NotFound(ClientError):
    """404: no live session has this uuid."""


class Conflict(ClientError):
    """409: the uuid exists already, the session is live (restore), or a retry is in flight."""


class PreconditionFailed(ClientError):
    """412: the session changed since the version this client read."""


class RateLimited(ClientError):
    """429 after every retry."""


class ServiceUnavailable(ClientError):
    """503 (or another 5xx) after every retry."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}


def error_for(status: int, problem: dict[str, Any]) -> ClientError:
    """The exception for a problem answered with ``status``."""
    if status >= 500:
        return ServiceUnavailable(status, problem)
    return _BY_STATUS.get(status, ClientError)(status, problem)
