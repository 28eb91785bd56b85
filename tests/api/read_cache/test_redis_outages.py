"""Redis down, slow, out of memory or back never shows in an answer: requests are
answered from the database, and invalidations still land."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from service.cache.redis_link import redis_link
from tests.factories import create_user_session
from tests.support.cache import (
    CacheCounts,
    MakeApp,
    cache_count,
    entry_key,
    fence_key,
    patch,
    path,
    read_twice,
    redis_errors,
)
from tests.support.problems import assert_problem
from tests.support.redisdb import PrivateRedis, unreachable_redis_url

pytestmark = pytest.mark.timing


def assert_every_operation_answers_from_the_database(client: FlaskClient) -> None:
    created = create_user_session(client, name="before")
    for _ in range(2):
        assert client.get(path(created)).get_json() == created
    response = client.patch(path(created), json={"name": "after"})
    assert response.status_code == 200
    assert client.get(path(created)).get_json() == response.get_json()
    assert client.get(path(created), headers={"If-None-Match": '"2"'}).status_code == 304
    assert client.delete(path(created)).status_code == 204
    assert_problem(client.get(path(created)), 404, "USER_SESSION_NOT_FOUND")


def test_with_redis_unreachable_every_request_is_answered_from_the_database(make_cached_app: MakeApp) -> None:
    client = make_cached_app(unreachable_redis_url(), REDIS_RETRY_INTERVAL="0").test_client()
    counts = CacheCounts()
    owed = cache_count("owed")
    invalidations_failed = redis_errors("cache_invalidate")
    started = time.monotonic()
    assert_every_operation_answers_from_the_database(client)
    assert time.monotonic() - started < 5
    # Two reads before the PATCH try Redis; the three after it skip Redis: its invalidation is owed.
    assert counts.since() == {"hit": 0, "miss": 0, "error": 2}
    assert cache_count("owed") == owed + 3
    # The PATCH's and the DELETE's invalidations, and what they owe sent again before each store after them.
    assert redis_errors("cache_invalidate") == invalidations_failed + 4
    assert client.get("/readyz").get_json()["cache"] == "unavailable"


def test_with_the_breaker_open_reads_skip_redis_and_count_an_error(make_cached_app: MakeApp) -> None:
    client = make_cached_app(unreachable_redis_url(), REDIS_RETRY_INTERVAL="60").test_client()
    created = create_user_session(client)
    lookups_failed = redis_errors("cache_lookup")
    counts = CacheCounts()
    for _ in range(3):
        assert client.get(path(created)).status_code == 200
    assert counts.since()["error"] == 3
    assert redis_errors("cache_lookup") == lookups_failed + 1, "one failed call, then the breaker"


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that accepts connections and never answers: Redis hung or far away."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_with_redis_slow_requests_wait_one_short_timeout_at_most(make_cached_app: MakeApp, silent_redis: str) -> None:
    client = make_cached_app(silent_redis, REDIS_TIMEOUT_MS="100", REDIS_RETRY_INTERVAL="60").test_client()
    created = create_user_session(client)
    counts = CacheCounts()
    started = time.monotonic()
    assert client.get(path(created)).get_json() == created  # one timeout, then the breaker opens
    assert client.get(path(created)).get_json() == created
    assert time.monotonic() - started < 1
    assert counts.since() == {"hit": 0, "miss": 0, "error": 2}
    started = time.monotonic()
    assert client.patch(path(created), json={"name": "slow"}).status_code == 200
    assert time.monotonic() - started < 1, "the invalidation gives up after the timeout"


def test_when_redis_comes_back_hits_resume(make_cached_app: MakeApp, private_redis: PrivateRedis) -> None:
    client = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0").test_client()
    created = create_user_session(client)
    read_twice(client, created)
    private_redis.stop()
    counts = CacheCounts()
    assert_every_operation_answers_from_the_database(client)
    assert counts.since()["hit"] == 0
    private_redis.start()  # empty, and without the scripts: they are loaded again
    again = create_user_session(client)
    counts = CacheCounts()
    read_twice(client, again)
    assert counts.since() == {"hit": 1, "miss": 1, "error": 0}
    patch(client, again)
    assert client.get(path(again)).get_json()["name"] == "patched"


def test_an_invalidation_that_cannot_reach_redis_leaves_a_stale_entry_for_cache_ttl_at_most(
    make_cached_app: MakeApp,
) -> None:
    """The contract's one exception: the writer's instance cannot reach Redis."""
    reader = make_cached_app(CACHE_TTL="1").test_client()
    cut_off_writer = make_cached_app(unreachable_redis_url()).test_client()
    created = create_user_session(reader)
    before_store = time.monotonic()
    read_twice(reader, created)
    after_store = time.monotonic()  # the entry lives 1 s from a moment between the two
    assert cut_off_writer.patch(path(created), json={"name": "new"}).status_code == 200
    name = reader.get(path(created)).get_json()["name"]
    if time.monotonic() - before_store < 0.9:
        assert name is None  # stale, as the contract allows
    time.sleep(max(after_store + 1 - time.monotonic(), 0) + 0.05)
    assert reader.get(path(created)).get_json()["name"] == "new"


def test_a_writer_whose_breaker_is_open_still_invalidates(make_cached_app: MakeApp) -> None:
    """A breaker opened by one failed call must not make this instance's
    writes skip Redis: every other instance would serve the old version."""
    reader = make_cached_app().test_client()
    writer_app = make_cached_app(REDIS_RETRY_INTERVAL="60")
    created = create_user_session(reader)
    read_twice(reader, created)
    link = redis_link(writer_app)
    assert link is not None
    link.failed("test", ConnectionError("a blip"))
    assert not link.available()
    assert writer_app.test_client().patch(path(created), json={"name": "new"}).status_code == 200
    assert reader.get(path(created)).get_json()["name"] == "new"
    assert link.available(), "the invalidation went through: the breaker closed"


def test_an_entry_this_code_did_not_write_is_a_miss_and_is_replaced(
    cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create_user_session(cached_client)
    store.set(entry_key(created), b"not an entry", px=10_000)
    counts = CacheCounts()
    assert cached_client.get(path(created)).get_json() == created
    assert cached_client.get(path(created)).get_json() == created
    assert counts.since() == {"hit": 1, "miss": 1, "error": 0}


def test_invalidation_works_when_redis_is_out_of_memory(make_cached_app: MakeApp, private_redis: PrivateRedis) -> None:
    """Under ``noeviction`` Redis refuses new data, never deletions: stores
    fail (counted), invalidations still drop entries and raise fences."""
    client = make_cached_app(private_redis.url, REDIS_RETRY_INTERVAL="0").test_client()
    created = create_user_session(client)
    read_twice(client, created)
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    patch(client, created)
    assert admin.get(entry_key(created)) is None
    assert admin.get(fence_key(created)) == b"2"
    counts = CacheCounts()
    assert client.get(path(created)).get_json()["name"] == "patched"
    assert counts.since() == {"hit": 0, "miss": 1, "error": 0}
    assert admin.get(entry_key(created)) is None, "the store was refused"
