"""Per request: one JSON log line and the request metrics.

Both name the route by its template (``/user-sessions/{user_session_uuid}``),
never the raw path or query string, which may hold ids and e-mail addresses;
the caller by its key fingerprint, never the key.
"""

from __future__ import annotations

import logging
import os
import re
import time
from functools import lru_cache
from typing import Any

from flask import Flask, Response, g, request

from service.observability import metrics

request_log = logging.getLogger("service.requests")

UNMATCHED_ROUTE = "unmatched"
# Any other method a client invents is counted as one label value.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


@lru_cache(maxsize=256)
def route_template(rule: str) -> str:
    """Flask's ``/a/<conv:name>`` as OpenAPI's ``/a/{name}``."""
    return _PLACEHOLDER.sub(r"{\1}", rule)


@lru_cache(maxsize=1024)
def _request_metrics(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and duration histogram of one label set, looked up once."""
    labels = {"method": method, "route": route, "status": str(status)}
    return metrics.HTTP_REQUESTS.labels(**labels), metrics.HTTP_REQUEST_DURATION.labels(**labels)


def note_caller(fingerprint: str) -> None:
    """Name the caller in this request's log line by its key's fingerprint (never the key)."""
    g.caller_fingerprint = fingerprint


def _start() -> None:
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    started: float | None = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    current = request._get_current_object()  # type: ignore[attr-defined]
    rule = current.url_rule
    route = route_template(rule.rule) if rule is not None else UNMATCHED_ROUTE
    method = current.method if current.method in KNOWN_METHODS else "OTHER"
    count, durations = _request_metrics(method, route, response.status_code)
    count.inc()
    durations.observe(duration)
    request_log.info(
        "%s %s %d",
        method,
        route,
        response.status_code,
        extra={
            "fields": {
                "method": method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 3),
                "api_key": g.get("caller_fingerprint"),
                "pid": os.getpid(),
            }
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Time every request from its first hook to its response."""
    app.before_request(_start)
    app.after_request(_finish)
