"""Prometheus metrics, summed over every worker process.

Under gunicorn, ``gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at an
empty folder before any worker imports this module; each worker then keeps its
samples in files there and ``/metrics`` adds them up, whichever worker
answers the scrape. Without that variable (tests, ``flask run``) the samples
live in this process.

Labels stay few and bounded: a route is its template, never the raw path.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DATABASE_ERRORS = Counter(
    "database_errors",
    "Database failures answered with 503: unavailable (connection or statement timeout) or pool_timeout.",
    ["kind"],
)
CACHE_REQUESTS = Counter(
    "cache_requests",
    "Read-through cache lookups of a user session, by result: hit, miss, error, cold "
    "(read too seldom in this process lately to ask Redis), or owed (its invalidation has not "
    "reached Redis yet: read from the database).",
    ["result"],
)
REDIS_ERRORS = Counter(
    "redis_errors",
    "Failed Redis calls (each one opens the breaker), by operation.",
    ["operation"],
)

CacheResult = Literal["hit", "miss", "error", "cold", "owed"]


def record_cache_request(result: CacheResult) -> None:
    """Count one cache lookup; the read-through cache calls this for each."""
    _cache_requests(result).inc()


@functools.cache
def _cache_requests(result: CacheResult) -> Any:
    return CACHE_REQUESTS.labels(result=result)


def render() -> bytes:
    """The text exposition of every metric, summed over worker processes."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
