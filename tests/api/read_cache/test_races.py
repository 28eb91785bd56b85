"""A store that read before a write is refused: fences only rise, and no reader ever
reads behind an acknowledged write."""

from __future__ import annotations

import threading
import uuid

import redis
from flask import Flask
from flask.testing import FlaskClient

from service.api.read_through import SHAPE, render
from service.cache.entries import Representation
from service.cache.representations import FENCE_SECONDS, GONE, user_session_cache
from service.operations import user_sessions as operations
from tests.factories import create_user_session
from tests.support.cache import CacheCounts, entry_key, fence_key, patch, path, purge


def test_a_store_of_what_was_read_before_a_write_is_refused(
    cached_app: Flask, cached_client: FlaskClient, store: redis.Redis
) -> None:
    """The race, step by step: a reader misses and reads version 1; a writer
    commits version 2 and invalidates; the reader then stores version 1."""
    created = create_user_session(cached_client)
    user_session_uuid = uuid.UUID(created["uuid"])
    with cached_app.app_context():
        read_before = render(operations.read_user_session(user_session_uuid))
    patch(cached_client, created)
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
    created = create_user_session(cached_client, name="erase me")
    user_session_uuid = uuid.UUID(created["uuid"])
    with cached_app.app_context():
        read_before = render(operations.read_user_session(user_session_uuid))
    purge(cached_client, created)
    # The uuid is created again meanwhile: the old reader still cannot store.
    again = create_user_session(cached_client, uuid=created["uuid"], name="new")
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
    created = create_user_session(cached_client)
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
