"""``X-Correlation-ID``: one id per request, on the response, in problems and logs."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Correlation-ID"
# The header as the WSGI environ names it: reading it there costs no exception when it is absent.
_ENVIRON_KEY = "HTTP_X_CORRELATION_ID"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _assign() -> None:
    sent = request.environ.get(_ENVIRON_KEY, "")
    g.correlation_id = sent if _SANE.fullmatch(sent) else uuid.uuid4().hex


def _echo(response: Response) -> Response:
    response.headers[HEADER] = g.get("correlation_id") or ""
    return response


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` to every log record made while a request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = g.get("correlation_id") if has_request_context() else None
        return True


def init_app(app: Flask) -> None:
    app.before_request(_assign)
    app.after_request(_echo)
