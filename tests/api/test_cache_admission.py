"""With the default CACHE_MIN_READS (2), a session read once costs no Redis call:
it is looked up and stored from its second read in the process."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis
from flask import Flask

from service.cache.representations import UserSessionCache
from service.observability import metrics
from tests.support.redisdb import shared_redis_url


def cache_count(result: str) -> float:
    return float(metrics.CACHE_REQUESTS.labels(result=result)._value.get())


@pytest.fixture
def cached_app(make_configured_app: Callable[..., Flask]) -> Flask:
    url = shared_redis_url()
    redis.Redis.from_url(url, socket_timeout=2).ping()
    return make_configured_app(REDIS_URL=url)


def test_a_session_is_cached_from_its_second_read(cached_app: Flask) -> None:
    client = cached_app.test_client()
    created = client.post("/user-sessions", json={"name": "Ada"}).get_json()
    key = UserSessionCache.entry_key(uuid.UUID(created["uuid"]))
    store = redis.Redis.from_url(shared_redis_url())
    path = f"/user-sessions/{created['uuid']}"
    before = {result: cache_count(result) for result in ("cold", "miss", "hit")}

    first = client.get(path)
    assert store.get(key) is None
    second = client.get(path)
    assert store.get(key) is not None
    third = client.get(path)

    assert first.get_data() == second.get_data() == third.get_data()
    counted = {result: cache_count(result) - before[result] for result in before}
    assert counted == {"cold": 1, "miss": 1, "hit": 1}


def test_a_write_still_invalidates_a_session_cached_from_its_second_read(cached_app: Flask) -> None:
    client = cached_app.test_client()
    created = client.post("/user-sessions", json={"name": "Ada"}).get_json()
    path = f"/user-sessions/{created['uuid']}"
    client.get(path)
    client.get(path)
    assert client.patch(path, json={"name": "Grace"}).status_code == 200
    assert client.get(path).get_json()["name"] == "Grace"
