"""Concurrent writers against a real gunicorn with several workers."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import requests

from tests.factories import create_live_user_session
from tests.support.live import LiveServer, race

ROUNDS = 10


def conditional_patch(url: str, if_match: str) -> Callable[[], requests.Response]:
    """A request each racer sends with its own name and the same ``If-Match``."""
    names = iter(("left", "right"))
    lock = threading.Lock()

    def patch() -> requests.Response:
        with lock:
            name = next(names)
        return requests.patch(url, json={"name": name}, headers={"If-Match": if_match}, timeout=10)

    return patch


def test_two_patches_with_the_same_if_match_one_wins_one_gets_412(live_server: LiveServer) -> None:
    for round_number in range(ROUNDS):
        user_session = create_live_user_session(live_server, name="start")
        url = live_server.url(f"/user-sessions/{user_session['uuid']}")
        statuses = Counter(response.status_code for response in race(2, conditional_patch(url, '"1"')))
        assert statuses == Counter({200: 1, 412: 1}), f"round {round_number}: {statuses}"
        final = requests.get(url, timeout=10).json()
        assert final["version"] == 2
        assert final["name"] in ("left", "right")


def test_concurrent_patches_without_if_match_lose_no_update(live_server: LiveServer) -> None:
    """Each writer adds its own metadata key; every key survives."""
    user_session = create_live_user_session(live_server)
    url = live_server.url(f"/user-sessions/{user_session['uuid']}")
    keys = iter(range(8))
    key_lock = threading.Lock()

    def patch() -> requests.Response:
        with key_lock:
            key = f"writer-{next(keys)}"
        return requests.patch(url, json={"metadata": {key: True}}, timeout=10)

    responses = race(8, patch)
    assert [response.status_code for response in responses] == [200] * 8
    final = requests.get(url, timeout=10).json()
    assert final["metadata"] == {f"writer-{index}": True for index in range(8)}
    assert final["version"] == 9
