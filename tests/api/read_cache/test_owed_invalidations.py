"""An invalidation Redis did not take is owed: sent again before any other use
of the link once Redis answers, and meanwhile the instance that acknowledged
the write reads the session from the database.

Two apps on one database stand for two instances. Redis is a private server
the test stops (the invalidation cannot reach it) and starts again (empty);
a reader that read version 1 before the write then stores it, as a slow
reader may once Redis is back and no fence stops it.
"""

from __future__ import annotations

import uuid

import redis
from flask import Flask

from service.api.read_through import render
from service.cache.entries import Representation
from service.cache.redis_link import redis_link
from service.cache.representations import user_session_cache
from service.operations import user_sessions as operations
from tests.factories import create_user_session
from tests.support.cache import CacheCounts, MakeApp, cache_count, entry_key, fence_key, path, read_twice
from tests.support.redisdb import PrivateRedis


def version_one(app: Flask, user_session_uuid: uuid.UUID) -> Representation:
    with app.app_context():
        representation = render(operations.read_user_session(user_session_uuid))
    assert representation.version == 1
    return representation


def store_late(app: Flask, user_session_uuid: uuid.UUID, representation: Representation) -> bool:
    """Store as a reader that read before the write would, now that Redis is back."""
    with app.app_context():
        cache = user_session_cache()
        assert cache is not None
        return cache.store(user_session_uuid, representation)


def test_the_acknowledging_instance_never_reads_the_copy_its_write_replaced(
    make_cached_app: MakeApp, private_redis: PrivateRedis
) -> None:
    writer_app = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0")
    other_app = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0")
    writer, other = writer_app.test_client(), other_app.test_client()
    created = create_user_session(writer)
    user_session_uuid = uuid.UUID(created["uuid"])
    read_before = version_one(other_app, user_session_uuid)

    private_redis.stop()
    assert writer.patch(path(created), json={"name": "after"}).status_code == 200
    private_redis.start()  # empty; the write's invalidation never reached it
    assert store_late(other_app, user_session_uuid, read_before), "no fence stops the late store"
    store = redis.Redis.from_url(private_redis.url)
    assert store.get(entry_key(created)) is not None

    owed = cache_count("owed")
    assert writer.get(path(created)).get_json()["name"] == "after"
    assert cache_count("owed") == owed + 1, "read from the database, not from Redis"
    # Its store after that read used the link: what it owed went first.
    assert store.get(fence_key(created)) == b"2"
    assert not store_late(other_app, user_session_uuid, read_before), "fenced off now"
    for _ in range(2):
        assert other.get(path(created)).get_json()["name"] == "after"


def test_what_is_owed_is_sent_before_any_other_use_of_the_link(
    make_cached_app: MakeApp, private_redis: PrivateRedis
) -> None:
    writer_app = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0")
    other = make_cached_app(private_redis.url).test_client()
    writer = writer_app.test_client()
    created = [create_user_session(writer) for _ in range(3)]
    for user_session in created:
        read_twice(other, user_session)

    private_redis.stop()
    for user_session in created:
        assert writer.patch(path(user_session), json={"name": "after"}).status_code == 200
    with writer_app.app_context():
        cache = user_session_cache()
        assert cache is not None
        assert len(cache.owed) == 3
    private_redis.start()
    store = redis.Redis.from_url(private_redis.url)
    assert [store.get(fence_key(user_session)) for user_session in created] == [None] * 3

    link = redis_link(writer_app)
    assert link is not None
    assert link.available()  # what a lookup, a store or the rate limiter asks first
    assert [store.get(fence_key(user_session)) for user_session in created] == [b"2"] * 3
    with writer_app.app_context():
        cache = user_session_cache()
        assert cache is not None
        assert len(cache.owed) == 0


def test_readyz_sends_what_is_owed_once_redis_answers(make_cached_app: MakeApp, private_redis: PrivateRedis) -> None:
    writer = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0").test_client()
    created = create_user_session(writer)
    private_redis.stop()
    assert writer.delete(path(created) + "?purge=true").status_code == 204
    private_redis.start()
    assert writer.get("/readyz").get_json()["cache"] == "ok"
    assert redis.Redis.from_url(private_redis.url).get(fence_key(created)) == b"gone"


def test_once_the_owed_invalidation_lands_the_session_is_served_from_redis_again(
    make_cached_app: MakeApp, private_redis: PrivateRedis
) -> None:
    writer = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0").test_client()
    created = create_user_session(writer)
    private_redis.stop()
    assert writer.patch(path(created), json={"name": "after"}).status_code == 200
    private_redis.start()
    owed = cache_count("owed")
    read_twice(writer, created)  # the first: owed (and its store sends the invalidation), then a hit
    assert cache_count("owed") == owed + 1
    counts = CacheCounts()
    assert writer.get(path(created)).get_json()["name"] == "after"
    assert counts.since()["hit"] == 1
