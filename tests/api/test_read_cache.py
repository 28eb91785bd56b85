"""The read-through cache of ``GET /user-sessions/{uuid}`` on a real Redis.

Hits answer the bytes the database path answers; every write is seen by the
next read; a store that lost a race with a write is refused; Redis down,
slow or back never shows in an answer.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.api.read_through import SHAPE, render
from service.cache.redis_link import redis_link
from service.cache.representations import (
    FENCE_SECONDS,
    GONE,
    Representation,
    UserSessionCache,
    epoch_microseconds,
    user_session_cache,
)
from service.database import get_db_session
from service.extensions import db
from service.models import UserSession
from service.observability import metrics
from service.operations import user_sessions as operations
from service.repositories.changes import CHANGES_NOTED, UnnotedUserSessionWrite, pending_changes
from tests.api.helpers import assert_problem
from tests.redisdb import PrivateRedis, shared_redis_url, unreachable_redis_url

MakeApp = Callable[..., Flask]
SAME_CORRELATION = {"X-Correlation-ID": "cache-test"}


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
        return make_configured_app(REDIS_URL=redis_url, **{"CACHE_MIN_READS": "1", **settings})

    return make


@pytest.fixture
def cached_app(make_cached_app: MakeApp) -> Flask:
    return make_cached_app()


@pytest.fixture
def cached_client(cached_app: Flask) -> FlaskClient:
    return cached_app.test_client()


@pytest.fixture
def store() -> redis.Redis:
    return redis.Redis.from_url(shared_redis_url())


def cache_count(result: str) -> float:
    return float(metrics.CACHE_REQUESTS.labels(result=result)._value.get())


def redis_errors(operation: str) -> float:
    return float(metrics.REDIS_ERRORS.labels(operation=operation)._value.get())


class CacheCounts:
    """Cache lookups counted since it was made."""

    def __init__(self) -> None:
        self.start = {result: cache_count(result) for result in ("hit", "miss", "error")}

    def since(self) -> dict[str, float]:
        return {result: cache_count(result) - before for result, before in self.start.items()}


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/user-sessions", json=fields)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def path(user_session: dict[str, Any]) -> str:
    return f"/user-sessions/{user_session['uuid']}"


def entry_key(user_session: dict[str, Any]) -> str:
    return UserSessionCache.entry_key(uuid.UUID(user_session["uuid"]))


def fence_key(user_session: dict[str, Any]) -> str:
    return UserSessionCache.fence_key(uuid.UUID(user_session["uuid"]))


def assert_same_response(expected: TestResponse, actual: TestResponse) -> None:
    assert actual.status_code == expected.status_code
    assert actual.get_data() == expected.get_data()
    assert sorted(actual.headers.items()) == sorted(expected.headers.items())


# --- hits ---------------------------------------------------------------------------------


FULL_SESSION = {
    "name": "Zoë «quoted» \u2028",
    "email": "Someone@Example.org",
    "ip_address": "2001:db8::1",
    "consent_user_data": True,
    "metadata": {"step": 3, "nested": {"ü": [1, 2.5, None, True, "</script>"]}, "empty": {}},
    "completed_at": "2026-01-02T03:04:05.123456Z",
    "ttl_seconds": 3600,
}


@pytest.mark.parametrize("fields", [{}, FULL_SESSION], ids=["anonymous", "every-field"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_hit_answers_the_bytes_and_headers_of_the_database_path(
    client: FlaskClient, cached_client: FlaskClient, fields: dict[str, Any], method: str
) -> None:
    created = create(cached_client, **fields)
    counts = CacheCounts()
    uncached = client.open(path(created), method=method, headers=SAME_CORRELATION)
    miss = cached_client.open(path(created), method=method, headers=SAME_CORRELATION)
    hit = cached_client.open(path(created), method=method, headers=SAME_CORRELATION)

    assert counts.since() == {"hit": 1, "miss": 1, "error": 0}
    assert uncached.status_code == 200
    assert_same_response(uncached, miss)
    assert_same_response(uncached, hit)
    # flask-smorest's own serialisation (``include_deleted`` reads never touch the cache).
    serialised_by_the_framework = client.open(
        path(created) + "?include_deleted=true", method=method, headers=SAME_CORRELATION
    )
    assert_same_response(serialised_by_the_framework, hit)
    if method == "GET":
        assert hit.get_json() == created
    assert hit.headers["ETag"] == '"1"'
    assert hit.headers["Cache-Control"] == "private, no-cache"
    assert hit.headers["Vary"] == "Authorization, X-API-Key"


def test_the_entry_is_the_body_with_its_version_and_expiry(cached_client: FlaskClient, store: redis.Redis) -> None:
    created = create(cached_client, ttl_seconds=20)
    body = cached_client.get(path(created)).get_data()
    value = store.get(entry_key(created))
    assert isinstance(value, bytes)
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert value == b"1\n%d\n%s\n" % (epoch_microseconds(expires_at), SHAPE.encode()) + body
    # It lives until the session expires, if that comes before CACHE_TTL.
    assert 18_000 < store.pttl(entry_key(created)) <= 20_000


def test_an_entry_lives_cache_ttl(make_cached_app: MakeApp, store: redis.Redis) -> None:
    client = make_cached_app(CACHE_TTL="7").test_client()
    created = create(client)
    client.get(path(created))
    assert store.get(entry_key(created)) is not None
    assert 6_000 < store.pttl(entry_key(created)) <= 7_000


@pytest.mark.parametrize("if_none_match", ['"1"', 'W/"1"', '"9", "1"', "*"])
def test_a_matching_if_none_match_on_a_hit_is_304(cached_client: FlaskClient, if_none_match: str) -> None:
    created = create(cached_client)
    cached_client.get(path(created))
    counts = CacheCounts()
    response = cached_client.get(path(created), headers={"If-None-Match": if_none_match})
    assert counts.since()["hit"] == 1
    assert response.status_code == 304
    assert response.get_data() == b""
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Cache-Control"] == "private, no-cache"


def test_a_stale_if_none_match_on_a_hit_gets_the_representation(cached_client: FlaskClient) -> None:
    created = create(cached_client)
    cached_client.get(path(created))
    response = cached_client.get(path(created), headers={"If-None-Match": '"7"'})
    assert response.status_code == 200
    assert response.get_json() == created


def test_an_entry_past_the_sessions_expires_at_answers_404_without_the_database(
    cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create(cached_client)
    past = epoch_microseconds(datetime.now(UTC) - timedelta(milliseconds=1))
    # As if the entry's clock ran slightly behind ours: Redis still holds it.
    store.set(entry_key(created), Representation(1, past, SHAPE, b'{"stale": true}\n').encode(), px=10_000)
    counts = CacheCounts()
    assert_problem(cached_client.get(path(created)), 404, "USER_SESSION_NOT_FOUND")
    assert_problem(cached_client.head(path(created)), 404, "USER_SESSION_NOT_FOUND")
    assert counts.since() == {"hit": 2, "miss": 0, "error": 0}


def test_a_cached_session_is_404_once_its_expires_at_passes(cached_client: FlaskClient) -> None:
    expires_at = datetime.now(UTC) + timedelta(milliseconds=400)
    created = create(cached_client, expires_at=expires_at.isoformat())
    assert cached_client.get(path(created)).status_code == 200
    assert cached_client.get(path(created)).status_code == 200
    time.sleep(max((expires_at - datetime.now(UTC)).total_seconds(), 0) + 0.01)
    assert_problem(cached_client.get(path(created)), 404, "USER_SESSION_NOT_FOUND")


def test_include_deleted_reads_the_database_and_leaves_the_cache_alone(
    client: FlaskClient, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create(cached_client)
    counts = CacheCounts()
    response = cached_client.get(path(created) + "?include_deleted=true", headers=SAME_CORRELATION)
    assert response.status_code == 200
    assert_same_response(client.get(path(created) + "?include_deleted=true", headers=SAME_CORRELATION), response)
    assert cached_client.delete(path(created)).status_code == 204
    deleted = cached_client.get(path(created) + "?include_deleted=true")
    assert deleted.status_code == 200
    assert deleted.get_json()["deleted_at"] is not None
    assert counts.since() == {"hit": 0, "miss": 0, "error": 0}
    assert store.get(entry_key(created)) is None


def test_a_missing_session_is_not_cached(cached_client: FlaskClient, store: redis.Redis) -> None:
    missing = {"uuid": str(uuid.uuid4())}
    counts = CacheCounts()
    assert_problem(cached_client.get(path(missing)), 404, "USER_SESSION_NOT_FOUND")
    assert_problem(cached_client.get(path(missing)), 404, "USER_SESSION_NOT_FOUND")
    assert counts.since() == {"hit": 0, "miss": 2, "error": 0}
    assert store.get(entry_key(missing)) is None


# --- every write invalidates ----------------------------------------------------------------


def _patch(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.patch(path(user_session), json={"name": "patched", "metadata": {"k": 1}}).status_code == 200


def _patch_if_match(client: FlaskClient, user_session: dict[str, Any]) -> None:
    response = client.patch(path(user_session), json={"consent_user_data": True}, headers={"If-Match": '"1"'})
    assert response.status_code == 200


def _patch_expired(client: FlaskClient, user_session: dict[str, Any]) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert client.patch(path(user_session), json={"expires_at": past}).status_code == 200


def _patch_email(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.patch(path(user_session), json={"email": "other@example.org"}).status_code == 200


def _soft_delete(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.delete(path(user_session)).status_code == 204


def _purge(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.delete(path(user_session) + "?purge=true").status_code == 204


def _issue_code(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.post(path(user_session) + "/email-verification").status_code == 201


def _check_wrong_code(client: FlaskClient, user_session: dict[str, Any]) -> None:
    code = client.post(path(user_session) + "/email-verification").get_json()["code"]
    _read_twice(client, user_session)  # the issue invalidated: cache the issued state again
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = client.post(path(user_session) + "/email-verification/check", json={"code": wrong})
    assert response.status_code == 422


def _check_right_code(client: FlaskClient, user_session: dict[str, Any]) -> None:
    code = client.post(path(user_session) + "/email-verification").get_json()["code"]
    _read_twice(client, user_session)
    response = client.post(path(user_session) + "/email-verification/check", json={"code": code})
    assert response.status_code == 200


def _restore_after_expiry(client: FlaskClient, user_session: dict[str, Any]) -> None:
    _patch_expired(client, user_session)
    restored = client.post(path(user_session) + "/restore", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert restored.status_code == 200


def _read_twice(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.get(path(user_session)).status_code == 200
    assert client.get(path(user_session)).status_code == 200


WRITES: dict[str, Callable[[FlaskClient, dict[str, Any]], None]] = {
    "patch": _patch,
    "patch-if-match": _patch_if_match,
    "patch-expires-at-in-the-past": _patch_expired,
    "patch-email": _patch_email,
    "soft-delete": _soft_delete,
    "purge": _purge,
    "issue-verification-code": _issue_code,
    "check-wrong-code": _check_wrong_code,
    "check-right-code": _check_right_code,
    "restore-after-expiry": _restore_after_expiry,
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_the_read_after_every_write_sees_it(
    client: FlaskClient, cached_client: FlaskClient, store: redis.Redis, write: Callable[..., None]
) -> None:
    created = create(cached_client, email="someone@example.org")
    counts = CacheCounts()
    _read_twice(cached_client, created)
    assert counts.since()["hit"] == 1

    write(cached_client, created)

    for _ in range(2):  # the read right after, and the one it may have cached
        after = cached_client.get(path(created), headers=SAME_CORRELATION)
        assert_same_response(client.get(path(created), headers=SAME_CORRELATION), after)
    fence = store.get(fence_key(created))
    assert fence is not None
    if after.status_code == 200:
        assert after.get_json()["version"] > created["version"]
        assert int(fence) == after.get_json()["version"]
    else:
        assert_problem(after, 404, "USER_SESSION_NOT_FOUND")


def test_a_patch_that_changes_nothing_keeps_the_entry(cached_client: FlaskClient, store: redis.Redis) -> None:
    created = create(cached_client, name="same")
    _read_twice(cached_client, created)
    assert cached_client.patch(path(created), json={"name": "same"}).status_code == 200
    counts = CacheCounts()
    assert cached_client.get(path(created)).get_json() == created
    assert counts.since()["hit"] == 1
    assert store.get(fence_key(created)) is None


def test_the_purge_command_fences_off_what_it_erased(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    erased = create(cached_client, ttl_seconds=60)
    kept = create(cached_client)
    _read_twice(cached_client, erased)
    _read_twice(cached_client, kept)
    assert cached_client.delete(path(erased)).status_code == 204
    with cached_app.app_context():
        old = render(operations.read_user_session(uuid.UUID(erased["uuid"]), include_deleted=True))
    result = cached_app.test_cli_runner().invoke(args=["user-sessions", "purge", "--deleted-before", "0s"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 1 user sessions")

    assert store.get(fence_key(erased)) == GONE.encode()
    with cached_app.app_context():
        cache = user_session_cache()
        assert cache is not None
        assert not cache.store(uuid.UUID(erased["uuid"]), old)
    assert store.get(entry_key(kept)) is not None
    assert store.get(fence_key(kept)) is None


# --- races: a store that read before a write ------------------------------------------------


def test_a_store_of_what_was_read_before_a_write_is_refused(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    """The race, step by step: a reader misses and reads version 1; a writer
    commits version 2 and invalidates; the reader then stores version 1."""
    created = create(cached_client)
    user_session_uuid = uuid.UUID(created["uuid"])
    with cached_app.app_context():
        read_before = render(operations.read_user_session(user_session_uuid))
    _patch(cached_client, created)
    with cached_app.app_context():
        cache = user_session_cache()
        assert cache is not None
        assert not cache.store(user_session_uuid, read_before)
        assert store.get(entry_key(created)) is None
        # The reader that read after the write stores; nobody can go back past it.
        read_after = render(operations.read_user_session(user_session_uuid))
        assert read_after.version == 2
        assert cache.store(user_session_uuid, read_after)
        assert not cache.store(user_session_uuid, read_before)
        assert not cache.store(user_session_uuid, read_after)
    assert cached_client.get(path(created)).get_json()["name"] == "patched"


def test_a_reader_of_a_purged_session_cannot_bring_it_back(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create(cached_client, name="erase me")
    user_session_uuid = uuid.UUID(created["uuid"])
    with cached_app.app_context():
        read_before = render(operations.read_user_session(user_session_uuid))
    _purge(cached_client, created)
    # The uuid is created again meanwhile: the old reader still cannot store.
    again = create(cached_client, uuid=created["uuid"], name="new")
    with cached_app.app_context():
        cache = user_session_cache()
        assert cache is not None
        assert not cache.store(user_session_uuid, read_before)
    assert store.get(fence_key(created)) == GONE.encode()
    assert 0 < store.pttl(fence_key(created)) <= FENCE_SECONDS * 1000
    # The new session is read from the database until the fence lapses.
    counts = CacheCounts()
    for _ in range(2):
        assert cached_client.get(path(created)).get_json() == again
    assert counts.since() == {"hit": 0, "miss": 2, "error": 0}


def test_fences_only_rise(cached_app: Flask, store: redis.Redis) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    with cached_app.app_context():
        cache = user_session_cache()
        assert cache is not None
        assert cache.invalidate({first: 5, second: None})
        assert cache.invalidate({first: 3, second: 9})
        assert store.get(cache.fence_key(first)) == b"5"
        assert store.get(cache.fence_key(second)) == GONE.encode()
        assert cache.invalidate({first: 8})
        assert store.get(cache.fence_key(first)) == b"8"
        assert not cache.store(first, Representation(7, None, SHAPE, b"{}\n"))
        assert cache.store(first, Representation(8, None, SHAPE, b"{}\n"))
        assert not cache.store(second, Representation(10, None, SHAPE, b"{}\n"))


def test_concurrent_readers_and_writers_never_read_behind_an_acknowledged_write(
    cached_app: Flask, cached_client: FlaskClient
) -> None:
    """Readers hammer the session while a writer patches it; after each
    acknowledged write, every read that starts later sees that version or a newer one."""
    created = create(cached_client)
    acknowledged = [1]
    stale: list[tuple[int, int]] = []
    stop = threading.Event()

    def reader() -> None:
        client = cached_app.test_client()
        while not stop.is_set():
            floor = acknowledged[-1]
            version = client.get(path(created)).get_json()["version"]
            if version < floor:
                stale.append((version, floor))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        writer = cached_app.test_client()
        for round_ in range(30):
            response = writer.patch(path(created), json={"name": f"round {round_}"})
            assert response.status_code == 200
            acknowledged.append(response.get_json()["version"])
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert stale == []
    assert cached_client.get(path(created)).get_json()["version"] == 31


# --- the unit of work: after commit, and only then ------------------------------------------


def test_a_nested_unit_of_work_invalidates_when_the_outermost_commits(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create(cached_client)
    _read_twice(cached_client, created)
    user_session_uuid = uuid.UUID(created["uuid"])
    with cached_app.app_context():
        with get_db_session() as db_session:
            operations.patch_user_session(user_session_uuid, {"name": "inner"})
            assert pending_changes(db_session) == {user_session_uuid: 2}
            assert store.get(entry_key(created)) is not None, "not before the outermost commit"
        assert store.get(entry_key(created)) is None
        assert store.get(fence_key(created)) == b"2"
        assert pending_changes(db.session()) == {}


def test_a_unit_of_work_that_rolls_back_invalidates_nothing(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create(cached_client)
    _read_twice(cached_client, created)
    with cached_app.app_context():
        with pytest.raises(RuntimeError), get_db_session():
            operations.patch_user_session(uuid.UUID(created["uuid"]), {"name": "rolled back"})
            raise RuntimeError("abandon the unit of work")
        assert pending_changes(db.session()) == {}
        with get_db_session():
            pass  # a later commit does not carry the abandoned writes
    assert store.get(fence_key(created)) is None
    assert cached_client.get(path(created)).get_json() == created


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_a_core_write_of_user_sessions_that_does_not_record_itself_is_refused(
    cached_app: Flask, cached_client: FlaskClient, statement: str
) -> None:
    from sqlalchemy import delete, update

    created = create(cached_client)
    target = UserSession.uuid == uuid.UUID(created["uuid"])
    unrecorded = update(UserSession).where(target).values(name="x") if statement == "update" else delete(UserSession)
    with cached_app.app_context():
        with pytest.raises(UnnotedUserSessionWrite), get_db_session() as db_session:
            db_session.execute(unrecorded.where(target))
        with get_db_session() as db_session:  # marked as recorded, it runs
            db_session.execute(update(UserSession).where(target).values(name="x").execution_options(**CHANGES_NOTED))
    assert cached_client.get(path(created)).get_json()["name"] == "x"


# --- Redis down, slow, back -----------------------------------------------------------------


def assert_every_operation_answers_from_the_database(client: FlaskClient) -> None:
    created = create(client, name="before")
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
    created = create(client)
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
    created = create(client)
    counts = CacheCounts()
    started = time.monotonic()
    assert client.get(path(created)).get_json() == created  # one timeout, then the breaker opens
    assert client.get(path(created)).get_json() == created
    assert time.monotonic() - started < 1
    assert counts.since() == {"hit": 0, "miss": 0, "error": 2}
    started = time.monotonic()
    assert client.patch(path(created), json={"name": "slow"}).status_code == 200
    assert time.monotonic() - started < 1, "the invalidation gives up after the timeout"


def test_when_redis_comes_back_hits_resume(make_cached_app: MakeApp) -> None:
    private = PrivateRedis()
    private.start()
    try:
        client = make_cached_app(private.url, REDIS_RETRY_INTERVAL="0").test_client()
        created = create(client)
        _read_twice(client, created)
        private.stop()
        counts = CacheCounts()
        assert_every_operation_answers_from_the_database(client)
        assert counts.since()["hit"] == 0
        private.start()  # empty, and without the scripts: they are loaded again
        again = create(client)
        counts = CacheCounts()
        _read_twice(client, again)
        assert counts.since() == {"hit": 1, "miss": 1, "error": 0}
        _patch(client, again)
        assert client.get(path(again)).get_json()["name"] == "patched"
    finally:
        private.stop()


def test_an_invalidation_that_cannot_reach_redis_leaves_a_stale_entry_for_cache_ttl_at_most(
    make_cached_app: MakeApp,
) -> None:
    """The contract's one exception: the writer's instance cannot reach Redis."""
    reader = make_cached_app(CACHE_TTL="1").test_client()
    cut_off_writer = make_cached_app(unreachable_redis_url()).test_client()
    created = create(reader)
    stored_at = time.monotonic()
    _read_twice(reader, created)
    assert cut_off_writer.patch(path(created), json={"name": "new"}).status_code == 200
    name = reader.get(path(created)).get_json()["name"]
    if time.monotonic() - stored_at < 0.9:
        assert name is None  # stale, as the contract allows
    time.sleep(max(stored_at + 1 - time.monotonic(), 0) + 0.05)
    assert reader.get(path(created)).get_json()["name"] == "new"


def test_a_writer_whose_breaker_is_open_still_invalidates(make_cached_app: MakeApp) -> None:
    """A breaker opened by one failed call must not make this instance's
    writes skip Redis: every other instance would serve the old version."""
    reader = make_cached_app().test_client()
    writer_app = make_cached_app(REDIS_RETRY_INTERVAL="60")
    created = create(reader)
    _read_twice(reader, created)
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
    created = create(cached_client)
    store.set(entry_key(created), b"not an entry", px=10_000)
    counts = CacheCounts()
    assert cached_client.get(path(created)).get_json() == created
    assert cached_client.get(path(created)).get_json() == created
    assert counts.since() == {"hit": 1, "miss": 1, "error": 0}


def test_invalidation_works_when_redis_is_out_of_memory(make_cached_app: MakeApp) -> None:
    """Under ``noeviction`` Redis refuses new data, never deletions: stores
    fail (counted), invalidations still drop entries and raise fences."""
    private = PrivateRedis()
    private.start()
    try:
        client = make_cached_app(private.url, REDIS_RETRY_INTERVAL="0").test_client()
        created = create(client)
        _read_twice(client, created)
        admin = redis.Redis.from_url(private.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        _patch(client, created)
        assert admin.get(entry_key(created)) is None
        assert admin.get(fence_key(created)) == b"2"
        counts = CacheCounts()
        assert client.get(path(created)).get_json()["name"] == "patched"
        assert counts.since() == {"hit": 0, "miss": 1, "error": 0}
        assert admin.get(entry_key(created)) is None, "the store was refused"
    finally:
        private.stop()
