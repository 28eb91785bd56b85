"""Observability: correlation ids, one JSON log line and the metrics of every request."""

from flask import Flask

from service.observability import correlation, requests


def init_app(app: Flask) -> None:
    """Correlation id first, so every later hook and log line carries it; then timing."""
    correlation.init_app(app)
    requests.init_app(app)
