"""``RATE_LIMIT``: per API key (per client address without one), 429 with
Retry-After; shared through Redis; Redis down fails open, never a 5xx."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from service.observability import metrics
from service.security.api_keys import fingerprint
from service.security.ratelimit import REDIS_KEY_PREFIX
from tests.support.problems import assert_problem
from tests.support.redisdb import PrivateRedis, shared_redis_url, unreachable_redis_url

MakeApp = Callable[..., Flask]


def new_key() -> str:
    return "key-" + secrets.token_hex(16)


@pytest.fixture
def make_limited_app(make_configured_app: MakeApp) -> MakeApp:
    """Builds apps with a rate limit on the test database."""

    def make(limit: str, **settings: str) -> Flask:
        return make_configured_app(RATE_LIMIT=limit, **settings)

    return make


def read(client: FlaskClient, key: str | None = None, **headers: str) -> int:
    if key is not None:
        headers["X-API-Key"] = key
    return client.get(f"/user-sessions/{uuid.uuid4()}", headers=headers).status_code


def assert_rate_limited(client: FlaskClient, key: str | None, window_seconds: int) -> None:
    response = client.get(f"/user-sessions/{uuid.uuid4()}", headers={"X-API-Key": key} if key else {})
    assert_problem(response, 429, "RATE_LIMITED")
    assert response.headers["Retry-After"].isdigit()
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds


def test_the_request_past_the_limit_is_429_with_retry_after(make_limited_app: MakeApp) -> None:
    client = make_limited_app("3/minute").test_client()
    assert [read(client) for _ in range(3)] == [404, 404, 404]
    assert_rate_limited(client, None, 60)
    assert_rate_limited(client, None, 60)


def test_reads_and_writes_count_against_one_budget(make_limited_app: MakeApp) -> None:
    client = make_limited_app("3/minute").test_client()
    created = client.post("/user-sessions", json={})
    assert created.status_code == 201
    assert client.patch(created.headers["Location"], json={"name": "x"}).status_code == 200
    assert client.get(created.headers["Location"]).status_code == 200
    assert_problem(client.delete(created.headers["Location"]), 429, "RATE_LIMITED")


def test_each_api_key_has_its_own_budget_and_failed_authentications_count(make_limited_app: MakeApp) -> None:
    first, second = new_key(), new_key()
    client = make_limited_app("2/minute", API_KEYS=f"{first},{second}:ro").test_client()
    assert [read(client, first), read(client, first)] == [404, 404]
    assert_rate_limited(client, first, 60)
    assert [read(client, second), read(client, second)] == [404, 404]
    assert_rate_limited(client, second, 60)

    # Without a valid key the client address pays: 401s count, then the guesser is stopped.
    assert [read(client), read(client, "guess-1")] == [401, 401]
    assert_rate_limited(client, "guess-2", 60)


def test_operational_endpoints_are_never_limited(make_limited_app: MakeApp) -> None:
    client = make_limited_app("1/minute").test_client()
    assert read(client) == 404
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("limit", "shortest", "longest"), [("2/minute;100/hour", 1, 60), ("100/minute;2/hour", 61, 3600)]
)
def test_with_several_limits_the_one_exceeded_sets_retry_after(
    make_limited_app: MakeApp, limit: str, shortest: int, longest: int
) -> None:
    client = make_limited_app(limit).test_client()
    assert [read(client), read(client)] == [404, 404]
    response = client.get(f"/user-sessions/{uuid.uuid4()}")
    assert_problem(response, 429, "RATE_LIMITED")
    assert shortest <= int(response.headers["Retry-After"]) <= longest


def test_the_client_address_comes_from_x_forwarded_for_only_behind_trusted_proxies(make_limited_app: MakeApp) -> None:
    direct = make_limited_app("1/minute").test_client()
    assert read(direct, **{"X-Forwarded-For": "203.0.113.1"}) == 404
    # Not trusted: a forged header does not buy a fresh budget.
    assert read(direct, **{"X-Forwarded-For": "203.0.113.2"}) == 429

    proxied = make_limited_app("1/minute", TRUSTED_PROXY_COUNT="1").test_client()
    assert read(proxied, **{"X-Forwarded-For": "203.0.113.1"}) == 404
    assert read(proxied, **{"X-Forwarded-For": "203.0.113.2"}) == 404
    assert read(proxied, **{"X-Forwarded-For": "203.0.113.1"}) == 429


# --- shared through Redis ----------------------------------------------------------------


def test_with_redis_every_instance_shares_one_count(make_limited_app: MakeApp) -> None:
    redis_url = shared_redis_url()
    key = new_key()
    settings = {"API_KEYS": key, "REDIS_URL": redis_url}
    first = make_limited_app("3/minute", **settings).test_client()
    second = make_limited_app("3/minute", **settings).test_client()
    assert [read(first, key), read(second, key), read(first, key)] == [404, 404, 404]
    assert_rate_limited(second, key, 60)
    assert_rate_limited(first, key, 60)

    stored = redis.Redis.from_url(redis_url).keys(f"{REDIS_KEY_PREFIX}*")
    assert any(b"key:" in name for name in stored)
    assert not any(key.encode() in name for name in stored), "the key itself must not name a Redis entry"


@pytest.mark.parametrize(
    ("limit", "shortest", "longest"), [("2/minute;100/hour", 1, 60), ("100/minute;2/hour", 61, 3600)]
)
def test_with_redis_and_several_limits_the_one_exceeded_sets_retry_after(
    make_limited_app: MakeApp, limit: str, shortest: int, longest: int
) -> None:
    redis_url = shared_redis_url()
    key = new_key()
    client = make_limited_app(limit, API_KEYS=key, REDIS_URL=redis_url).test_client()
    assert [read(client, key), read(client, key)] == [404, 404]
    response = client.get(f"/user-sessions/{uuid.uuid4()}", headers={"X-API-Key": key})
    assert_problem(response, 429, "RATE_LIMITED")
    assert shortest <= int(response.headers["Retry-After"]) <= longest

    # Each limit is a counter that ends with its window; counting stops at the first one exceeded.
    store = redis.Redis.from_url(redis_url)
    names = store.keys(f"{REDIS_KEY_PREFIX}:{{key:{fingerprint(key)}}}*")
    counters = {name.decode(): store.get(name) for name in names}
    expected = [b"2", b"3"] if limit.startswith("2/") else [b"3", b"3"]
    assert sorted(counters.values()) == expected, counters
    for name in counters:
        assert 0 < store.pttl(name) <= (60_000 if "minute" in name else 3_600_000)


def test_a_redis_that_lost_the_script_or_a_counters_lifetime_still_limits(
    make_limited_app: MakeApp, private_redis: PrivateRedis
) -> None:
    key = new_key()
    client = make_limited_app("2/minute", API_KEYS=key, REDIS_URL=private_redis.url).test_client()
    store = redis.Redis.from_url(private_redis.url)
    assert read(client, key) == 404
    store.script_flush()  # as a restart without persistence leaves it
    assert read(client, key) == 404
    (counter,) = store.keys(f"{REDIS_KEY_PREFIX}*")
    assert store.get(counter) == b"2"

    store.persist(counter)  # a counter without a lifetime would limit the key for ever
    assert_rate_limited(client, key, 60)
    assert 0 < store.pttl(counter) <= 60_000


@pytest.mark.timing
def test_with_redis_down_requests_still_pass_and_each_process_counts_alone(make_limited_app: MakeApp) -> None:
    client = make_limited_app("3/minute", REDIS_URL=unreachable_redis_url()).test_client()
    errors_before = metrics.REDIS_ERRORS.labels(operation="rate_limit")._value.get()
    started = time.monotonic()
    assert [read(client) for _ in range(3)] == [404, 404, 404]
    assert_rate_limited(client, None, 60)
    assert time.monotonic() - started < 2
    # The breaker: one failed call, then Redis is left alone for the retry interval.
    assert metrics.REDIS_ERRORS.labels(operation="rate_limit")._value.get() == errors_before + 1
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["cache"] == "unavailable"


def test_when_redis_comes_back_the_count_is_shared_again(
    make_limited_app: MakeApp, private_redis: PrivateRedis
) -> None:
    settings = {"REDIS_URL": private_redis.url, "REDIS_RETRY_INTERVAL": "0"}
    client = make_limited_app("100/minute", **settings).test_client()
    assert read(client) == 404
    assert redis.Redis.from_url(private_redis.url).keys(f"{REDIS_KEY_PREFIX}*")
    private_redis.stop()
    assert [read(client) for _ in range(3)] == [404, 404, 404]
    assert client.get("/readyz").get_json() == {"status": "ok", "database": "ok", "cache": "unavailable"}
    private_redis.start()  # an empty Redis: the count starts again there
    assert read(client) == 404
    stored = redis.Redis.from_url(private_redis.url)
    assert [stored.get(name) for name in stored.keys(f"{REDIS_KEY_PREFIX}*")] == [b"1"]
    assert client.get("/readyz").get_json()["cache"] == "ok"
