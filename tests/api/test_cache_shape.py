"""An entry stored with another body shape (an earlier release's) is a miss,
and the reader's own body replaces it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis
from flask import Flask

from service.api.read_through import SHAPE
from service.cache.entries import Representation
from service.cache.representations import UserSessionCache
from tests.support.redisdb import shared_redis_url


@pytest.fixture
def cached_app(make_configured_app: Callable[..., Flask]) -> Flask:
    url = shared_redis_url()
    redis.Redis.from_url(url, socket_timeout=2).ping()
    return make_configured_app(REDIS_URL=url, CACHE_MIN_READS="1")


def test_an_entry_of_another_shape_is_never_answered(cached_app: Flask) -> None:
    client = cached_app.test_client()
    created = client.post("/user-sessions", json={"name": "Ada"}).get_json()
    key = UserSessionCache.entry_key(uuid.UUID(created["uuid"]))
    store = redis.Redis.from_url(shared_redis_url())
    stale = Representation(created["version"], None, "0123456789abcdef", b'{"name": "from an old release"}\n')
    store.set(key, stale.encode(), px=10_000)

    response = client.get(f"/user-sessions/{created['uuid']}")

    assert response.status_code == 200
    assert response.get_json()["name"] == "Ada"
    stored = Representation.decode(store.get(key) or b"")
    assert stored is not None and stored.shape == SHAPE and stored.body == response.get_data()
