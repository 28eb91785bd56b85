"""Every write, through the API or the purge command, invalidates the session's entry:
the next read sees it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from service.api.read_through import render
from service.cache.representations import GONE, user_session_cache
from service.operations import user_sessions as operations
from tests.factories import create_user_session
from tests.support.cache import CacheCounts, assert_same_response, entry_key, fence_key, patch, path, purge, read_twice
from tests.support.problems import assert_problem

SAME_CORRELATION = {"X-Correlation-ID": "cache-test"}


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


def _issue_code(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.post(path(user_session) + "/email-verification").status_code == 201


def _check_wrong_code(client: FlaskClient, user_session: dict[str, Any]) -> None:
    code = client.post(path(user_session) + "/email-verification").get_json()["code"]
    read_twice(client, user_session)  # the issue invalidated: cache the issued state again
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = client.post(path(user_session) + "/email-verification/check", json={"code": wrong})
    assert response.status_code == 422


def _check_right_code(client: FlaskClient, user_session: dict[str, Any]) -> None:
    code = client.post(path(user_session) + "/email-verification").get_json()["code"]
    read_twice(client, user_session)
    response = client.post(path(user_session) + "/email-verification/check", json={"code": code})
    assert response.status_code == 200


def _restore_after_expiry(client: FlaskClient, user_session: dict[str, Any]) -> None:
    _patch_expired(client, user_session)
    restored = client.post(path(user_session) + "/restore", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert restored.status_code == 200


WRITES: dict[str, Callable[[FlaskClient, dict[str, Any]], None]] = {
    "patch": patch,
    "patch-if-match": _patch_if_match,
    "patch-expires-at-in-the-past": _patch_expired,
    "patch-email": _patch_email,
    "soft-delete": _soft_delete,
    "purge": purge,
    "issue-verification-code": _issue_code,
    "check-wrong-code": _check_wrong_code,
    "check-right-code": _check_right_code,
    "restore-after-expiry": _restore_after_expiry,
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_the_read_after_every_write_sees_it(
    client: FlaskClient, cached_client: FlaskClient, store: redis.Redis, write: Callable[..., None]
) -> None:
    created = create_user_session(cached_client, email="someone@example.org")
    counts = CacheCounts()
    read_twice(cached_client, created)
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
    created = create_user_session(cached_client, name="same")
    read_twice(cached_client, created)
    assert cached_client.patch(path(created), json={"name": "same"}).status_code == 200
    counts = CacheCounts()
    assert cached_client.get(path(created)).get_json() == created
    assert counts.since()["hit"] == 1
    assert store.get(fence_key(created)) is None


def test_an_invalidation_reaches_a_redis_that_lost_its_scripts(cached_client: FlaskClient, store: redis.Redis) -> None:
    """A Redis restarted without persistence, or told SCRIPT FLUSH, no longer knows the
    invalidation script: the write loads it again and the invalidation lands."""
    created = create_user_session(cached_client, name="before")
    read_twice(cached_client, created)
    assert store.get(entry_key(created)) is not None
    store.script_flush()
    patched = cached_client.patch(path(created), json={"name": "after"})
    assert patched.status_code == 200
    assert store.get(entry_key(created)) is None
    assert int(store.get(fence_key(created)) or 0) == patched.get_json()["version"]
    assert cached_client.get(path(created)).get_json()["name"] == "after"


def test_the_purge_command_fences_off_what_it_erased(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    erased = create_user_session(cached_client, ttl_seconds=60)
    kept = create_user_session(cached_client)
    read_twice(cached_client, erased)
    read_twice(cached_client, kept)
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
