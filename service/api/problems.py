"""The one mapping of every failure to an RFC 9457 problem response.

Every failure, the service's own errors and the framework's, becomes
``application/problem+json`` with a stable ``code`` and the request's
``correlation_id``. Nothing else builds error responses, and no stack trace,
SQL or secret ever reaches one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, json, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from service.api.converters import MalformedItemId, MalformedUserSessionUUID
from service.errors import (
    DatabaseUnavailable,
    FieldErrors,
    ItemNotFound,
    QueryValidationError,
    RequestValidationError,
    ServiceError,
    UserSessionNotFound,
    WriteConflict,
)
from service.observability import metrics

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:user-sessions:problem:"

# Status codes raised by Flask and Werkzeug themselves, with our stable codes.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
}


def stable_codes() -> list[str]:
    """Every ``code`` a problem can carry: the service's errors' and the framework's."""
    codes = {"INTERNAL_ERROR", "INVALID_QUERY_PARAMETER", "VALIDATION_FAILED", *_HTTP_CODES.values()}
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        error = pending.pop()
        codes.add(error.code)
        pending.extend(error.__subclasses__())
    return sorted(codes)


# The framework's refusals, in the service's own words (never Werkzeug's).
_HTTP_DETAILS = {
    400: "The request is not one the service can read.",
    404: "No resource exists at this URL.",
    405: "This URL does not support this method; see the Allow header.",
    406: "The service answers JSON only; accept application/json.",
    415: "The request body's Content-Type is not accepted here.",
    422: "The request body is not valid.",
    429: "Too many requests; retry after the number of seconds in Retry-After.",
    500: "The service failed to handle the request.",
}
_OTHER_STATUS_DETAIL = "The service cannot answer this request (HTTP {status})."


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    errors: FieldErrors | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build an RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code.lower().replace("_", "-"),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = {field: list(messages) for field, messages in errors.items()}
    body.update(extra or {})
    body["correlation_id"] = g.get("correlation_id")
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    response.headers.update(headers or {})
    return response


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested error messages into ``field -> [messages]``.

    webargs nests messages under the location (``{"json": {...}}``); those
    location keys are dropped, and nested fields are joined with dots; what
    is said of a nested object as a whole is said of its name (``items.0``).
    """
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = str(key)
            if not prefix and name in ("json", "query", "querystring", "headers", "view_args", "path"):
                name = ""
            elif prefix and name == "_schema":
                name = ""  # a nested object as a whole (``items.0``), not a field of it
            flat.update(flatten_messages(value, f"{prefix}.{name}" if prefix and name else prefix or name))
    elif isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        flat.setdefault(prefix or "_body", []).extend(messages)
    elif isinstance(messages, list):
        for item in messages:
            flat.update(flatten_messages(item, prefix))
    else:
        flat.setdefault(prefix or "_body", []).append(str(messages))
    return flat


def _handle_service_error(error: ServiceError) -> Response:
    if error.status >= 500:
        log.warning("answered %s %s: %s", error.status, error.code, error.detail)
    return problem_response(
        error.status, error.code, error.detail, errors=error.errors, headers=error.headers, extra=error.extra
    )


def _handle_malformed_uuid(_error: HTTPException) -> Response:
    return _handle_service_error(UserSessionNotFound())


def _handle_malformed_item_id(_error: HTTPException) -> Response:
    return _handle_service_error(ItemNotFound())


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {key: value for key, value in error.get_headers() if key.lower() != "content-type"}
    data = getattr(error, "data", None) or {}
    if "messages" in data:
        # webargs' abort after a schema failed: body errors 422, query errors 400.
        errors = flatten_messages(data["messages"])
        if status == 400:
            return problem_response(
                400, "INVALID_QUERY_PARAMETER", QueryValidationError.detail, errors=errors, headers=headers
            )
        return problem_response(status, "VALIDATION_FAILED", RequestValidationError.detail, errors=errors)
    code = _HTTP_CODES.get(status, HTTPStatus(status).name)
    if status == 413:
        limit = request.max_content_length
        detail = f"The request body is larger than the {(limit or 0) // 1024} KiB allowed here."
    else:
        detail = _HTTP_DETAILS.get(status, _OTHER_STATUS_DETAIL.format(status=status))
    return problem_response(status, code, detail, headers=headers)


def _is_unavailable(error: DBAPIError) -> bool:
    # InterfaceError: the driver found its connection closed under it (the
    # server went away between statements), which is an outage too.
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated


def _handle_database_error(error: DBAPIError) -> Response:
    if _is_unavailable(error):
        metrics.DATABASE_ERRORS.labels(kind="unavailable").inc()
        # Only the error's class is logged: its text can hold SQL and the values sent.
        log.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else type(error).__name__)
        return _handle_service_error(DatabaseUnavailable())
    return _handle_unexpected(error)


def _handle_pool_timeout(_error: PoolTimeoutError) -> Response:
    metrics.DATABASE_ERRORS.labels(kind="pool_timeout").inc()
    log.warning("database connection pool exhausted")
    return _handle_service_error(DatabaseUnavailable())


def _handle_stale_data(_error: StaleDataError) -> Response:
    # Row locks make this rare: a writer that bypassed them changed the row.
    return _handle_service_error(WriteConflict())


def _handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return problem_response(500, "INTERNAL_ERROR", ServiceError.detail)


def register_error_handlers(app: Flask) -> None:
    """Route every failure to a problem response."""
    app.register_error_handler(ServiceError, _handle_service_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(MalformedUserSessionUUID, _handle_malformed_uuid)
    app.register_error_handler(MalformedItemId, _handle_malformed_item_id)
    app.register_error_handler(DBAPIError, _handle_database_error)
    app.register_error_handler(PoolTimeoutError, _handle_pool_timeout)
    app.register_error_handler(StaleDataError, _handle_stale_data)
    app.register_error_handler(Exception, _handle_unexpected)
