"""Logging: one JSON object per line on stdout, with the correlation id.

Log lines name things by id, route template and key fingerprint only: never
a request body, a query string, an e-mail address, a verification code or an
API key. Code that logs passes structured fields as ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from service.observability.correlation import CorrelationIdFilter

_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record comes, one write per line."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # emit runs under the handler's lock
        super().emit(record)


def configure_logging(app: Flask) -> None:
    """Send the service's logs to stdout as JSON lines, at ``LOG_LEVEL``.

    Idempotent: building the app again replaces the handler it added before.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdoutHandler):
            root.removeHandler(handler)
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationIdFilter())
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
