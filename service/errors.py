"""The errors the service answers on purpose, each with its status and stable code.

Use cases, views and hooks raise these; ``service.api.problems`` turns every
failure, these and the framework's, into one problem response.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

FieldErrors = Mapping[str, list[str]]


class ServiceError(Exception):
    """Base of every error the service answers on purpose."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    detail: str = "The service failed to handle the request."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: FieldErrors | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class UserSessionNotFound(ServiceError):
    status, code = 404, "USER_SESSION_NOT_FOUND"
    detail = "No user session exists with this uuid."


class UserSessionAlreadyExists(ServiceError):
    status, code = 409, "USER_SESSION_ALREADY_EXISTS"
    detail = "A user session with this uuid exists already (it may be deleted)."


class UserSessionIsLive(ServiceError):
    status, code = 409, "USER_SESSION_IS_LIVE"
    detail = "The user session is neither deleted nor expired; there is nothing to restore."


class ItemNotFound(ServiceError):
    status, code = 404, "ITEM_NOT_FOUND"
    detail = "The user session holds no conversation item with this id."


class ItemAlreadyExists(ServiceError):
    status, code = 409, "ITEM_ALREADY_EXISTS"
    detail = "A conversation item with this id exists already; nothing of the batch was stored."


class PreconditionFailed(ServiceError):
    status, code = 412, "PRECONDITION_FAILED"
    detail = "If-Match does not match the current version of the user session."


class WriteConflict(ServiceError):
    status, code = 409, "WRITE_CONFLICT"
    detail = "The user session kept changing under this request; retry it."


class RequestValidationError(ServiceError):
    status, code = 422, "VALIDATION_FAILED"
    detail = "The request body is not valid."


class QueryValidationError(ServiceError):
    status, code = 400, "INVALID_QUERY_PARAMETER"
    detail = "The query string is not valid."


class InvalidHeader(ServiceError):
    status, code = 400, "INVALID_HEADER"
    detail = "A request header is not valid."


class MalformedJSON(ServiceError):
    status, code = 400, "MALFORMED_JSON"
    detail = "The request body is not valid JSON."


class UnsupportedMediaType(ServiceError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"
    detail = "The request body's Content-Type is not accepted here."


class AuthenticationRequired(ServiceError):
    status, code = 401, "AUTHENTICATION_REQUIRED"
    detail = "Send a valid API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class ReadOnlyApiKey(ServiceError):
    status, code = 403, "READ_ONLY_API_KEY"
    detail = "This API key may only read (GET and HEAD); use a read-write key to change data."


class RateLimited(ServiceError):
    status, code = 429, "RATE_LIMITED"
    detail = "Too many requests from this caller; retry after the number of seconds in Retry-After."

    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(headers={"Retry-After": retry_after(retry_after_seconds)})


class DatabaseUnavailable(ServiceError):
    status, code = 503, "DATABASE_UNAVAILABLE"
    detail = "The database is unavailable or too slow right now; retry shortly."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up, at least one."""
    return str(max(1, math.ceil(seconds)))
