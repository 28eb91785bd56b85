"""Cache hits answer the bytes, headers and conditional answers of the database path;
entries live ``CACHE_TTL`` and never past the session's expiry."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from service.api.read_through import SHAPE
from service.cache.entries import Representation, epoch_microseconds
from tests.factories import create_user_session, full_session_body
from tests.support.cache import CacheCounts, MakeApp, assert_same_response, entry_key, path
from tests.support.problems import assert_problem

SAME_CORRELATION = {"X-Correlation-ID": "cache-test"}


@pytest.mark.parametrize("fields", [{}, full_session_body()], ids=["anonymous", "every-field"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_hit_answers_the_bytes_and_headers_of_the_database_path(
    client: FlaskClient, cached_client: FlaskClient, fields: dict[str, Any], method: str
) -> None:
    created = create_user_session(cached_client, **fields)
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
    created = create_user_session(cached_client, ttl_seconds=20)
    body = cached_client.get(path(created)).get_data()
    value = store.get(entry_key(created))
    assert isinstance(value, bytes)
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert value == b"1\n%d\n%s\n" % (epoch_microseconds(expires_at), SHAPE.encode()) + body
    # It lives until the session expires, if that comes before CACHE_TTL.
    assert 18_000 < store.pttl(entry_key(created)) <= 20_000


def test_an_entry_lives_cache_ttl(make_cached_app: MakeApp, store: redis.Redis) -> None:
    client = make_cached_app(CACHE_TTL="7").test_client()
    created = create_user_session(client)
    client.get(path(created))
    assert store.get(entry_key(created)) is not None
    assert 6_000 < store.pttl(entry_key(created)) <= 7_000


@pytest.mark.parametrize("if_none_match", ['"1"', 'W/"1"', '"9", "1"', "*"])
def test_a_matching_if_none_match_on_a_hit_is_304(cached_client: FlaskClient, if_none_match: str) -> None:
    created = create_user_session(cached_client)
    cached_client.get(path(created))
    counts = CacheCounts()
    response = cached_client.get(path(created), headers={"If-None-Match": if_none_match})
    assert counts.since()["hit"] == 1
    assert response.status_code == 304
    assert response.get_data() == b""
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Cache-Control"] == "private, no-cache"


def test_a_stale_if_none_match_on_a_hit_gets_the_representation(cached_client: FlaskClient) -> None:
    created = create_user_session(cached_client)
    cached_client.get(path(created))
    response = cached_client.get(path(created), headers={"If-None-Match": '"7"'})
    assert response.status_code == 200
    assert response.get_json() == created


def test_an_entry_past_the_sessions_expires_at_answers_404_without_the_database(
    cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create_user_session(cached_client)
    past = epoch_microseconds(datetime.now(UTC) - timedelta(milliseconds=1))
    # As if the entry's clock ran slightly behind ours: Redis still holds it.
    store.set(entry_key(created), Representation(1, past, SHAPE, b'{"stale": true}\n').encode(), px=10_000)
    counts = CacheCounts()
    assert_problem(cached_client.get(path(created)), 404, "USER_SESSION_NOT_FOUND")
    assert_problem(cached_client.head(path(created)), 404, "USER_SESSION_NOT_FOUND")
    assert counts.since() == {"hit": 2, "miss": 0, "error": 0}


def test_a_cached_session_is_404_once_its_expires_at_passes(cached_client: FlaskClient) -> None:
    # Far enough off for a busy machine to make the two reads before it.
    expires_at = datetime.now(UTC) + timedelta(milliseconds=1500)
    created = create_user_session(cached_client, expires_at=expires_at.isoformat())
    assert cached_client.get(path(created)).status_code == 200
    assert cached_client.get(path(created)).status_code == 200
    time.sleep(max((expires_at - datetime.now(UTC)).total_seconds(), 0) + 0.01)
    assert_problem(cached_client.get(path(created)), 404, "USER_SESSION_NOT_FOUND")


def test_include_deleted_reads_the_database_and_leaves_the_cache_alone(
    client: FlaskClient, cached_client: FlaskClient, store: redis.Redis
) -> None:
    created = create_user_session(cached_client)
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
