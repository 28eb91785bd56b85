"""Looking at the read-through cache from a test: its keys, its counters, its answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.cache.representations import UserSessionCache
from service.observability import metrics

MakeApp = Callable[..., Flask]


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


def patch(client: FlaskClient, user_session: dict[str, Any]) -> None:
    """A PATCH that changes the session (a write the cache must see)."""
    assert client.patch(path(user_session), json={"name": "patched", "metadata": {"k": 1}}).status_code == 200


def purge(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert client.delete(path(user_session) + "?purge=true").status_code == 204


def read_twice(client: FlaskClient, user_session: dict[str, Any]) -> None:
    """A miss that stores the entry, then a hit."""
    assert client.get(path(user_session)).status_code == 200
    assert client.get(path(user_session)).status_code == 200
