"""Apps and clients with the read-through cache of ``GET /user-sessions/{uuid}`` on a real Redis."""

from __future__ import annotations

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.support.cache import MakeApp
from tests.support.redisdb import shared_redis_url


@pytest.fixture
def make_cached_app(make_configured_app: MakeApp) -> MakeApp:
    """Builds apps with a Redis cache on the test database.

    Without ``redis_url`` they use the shared test Redis: skipped when
    ``TEST_REDIS_URL`` is unset, failing when it is set and does not answer.
    """

    def make(redis_url: str | None = None, **settings: str) -> Flask:
        if redis_url is None:
            redis_url = shared_redis_url()
            redis.Redis.from_url(redis_url, socket_timeout=2).ping()
        # Every read asks the cache (the default waits for a second read: test_cache_admission.py).
        # A timeout that a busy machine's slowest reply stays inside: a test that
        # counts hits and misses would otherwise see an error now and then.
        defaults = {"CACHE_MIN_READS": "1", "REDIS_TIMEOUT_MS": "2000"}
        return make_configured_app(REDIS_URL=redis_url, **{**defaults, **settings})

    return make


@pytest.fixture
def cached_app(make_cached_app: MakeApp) -> Flask:
    return make_cached_app()


@pytest.fixture
def cached_client(cached_app: Flask) -> FlaskClient:
    return cached_app.test_client()


@pytest.fixture
def store() -> redis.Redis:
    """The shared test Redis, to look at the cache's keys."""
    return redis.Redis.from_url(shared_redis_url())
