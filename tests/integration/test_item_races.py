"""Conversation items under concurrency: real gunicorn, several workers, real
threads, on PostgreSQL and on SQLite.

Racing appends to one session all succeed, each batch's seqs consecutive and
in the order sent, never interleaved with another's; racing pops never return
the same item, and together return exactly what was there, newest first.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import requests

from tests.factories import create_live_user_session as create
from tests.support.live import LiveServer, race

APPENDERS = 12
BATCH = 5
ROUNDS = 2


def append(live_server: LiveServer, user_session_uuid: str, items: list[dict[str, Any]]) -> requests.Response:
    url = live_server.url(f"/user-sessions/{user_session_uuid}/items")
    return requests.post(url, json={"items": items}, timeout=30)


def all_items(live_server: LiveServer, user_session_uuid: str) -> list[dict[str, Any]]:
    url = live_server.url(f"/user-sessions/{user_session_uuid}/items")
    response = requests.get(url, params={"limit": 500}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["next_page_token"] is None
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_racing_appends_to_one_session_each_get_consecutive_seqs(live_server: LiveServer) -> None:
    for round_number in range(ROUNDS):
        user_session = create(live_server)["uuid"]
        writers = iter(range(APPENDERS))
        lock = threading.Lock()

        def batch(
            writers: Iterator[int] = writers, lock: threading.Lock = lock, user_session: str = user_session
        ) -> requests.Response:
            with lock:
                writer = next(writers)
            items = [{"content": {"writer": writer, "index": index}, "role": "user"} for index in range(BATCH)]
            return append(live_server, user_session, items)

        responses = race(APPENDERS, batch)
        assert [response.status_code for response in responses] == [201] * APPENDERS, f"round {round_number}"
        for response in responses:
            items = response.json()["items"]
            writer = items[0]["content"]["writer"]
            assert [item["content"] for item in items] == [{"writer": writer, "index": i} for i in range(BATCH)]
            first = items[0]["seq"]
            assert [item["seq"] for item in items] == list(range(first, first + BATCH))
        stored = all_items(live_server, user_session)
        assert [item["seq"] for item in stored] == list(range(1, APPENDERS * BATCH + 1))
        # In the history, each batch is one run: never interleaved with another.
        runs = [item["content"]["writer"] for item in stored]
        assert runs == [writer for writer in dict.fromkeys(runs) for _ in range(BATCH)]


def test_racing_pops_never_return_the_same_item(live_server: LiveServer) -> None:
    for round_number in range(ROUNDS):
        user_session = create(live_server)["uuid"]
        stored = append(live_server, user_session, [{"content": index} for index in range(10)]).json()["items"]
        url = live_server.url(f"/user-sessions/{user_session}/items/pop")

        responses = race(14, lambda url=url: requests.post(url, timeout=30))

        popped = [response.json() for response in responses if response.status_code == 200]
        empty = [response for response in responses if response.status_code == 404]
        assert len(popped) == 10, f"round {round_number}: {[response.status_code for response in responses]}"
        assert len(empty) == 4
        assert {response.json()["code"] for response in empty} == {"ITEM_NOT_FOUND"}
        assert sorted(item["seq"] for item in popped) == list(range(1, 11))
        assert sorted(popped, key=lambda item: item["seq"]) == stored
        assert all_items(live_server, user_session) == []


def test_appends_and_pops_racing_on_one_session_lose_nothing_and_collide_never(live_server: LiveServer) -> None:
    user_session = create(live_server)["uuid"]
    append(live_server, user_session, [{"content": "seed"}])
    kinds = iter(["append", "pop"] * 6)
    lock = threading.Lock()

    def act() -> requests.Response:
        with lock:
            kind = next(kinds)
        if kind == "append":
            return append(live_server, user_session, [{"content": str(uuid.uuid4())} for _ in range(3)])
        return requests.post(live_server.url(f"/user-sessions/{user_session}/items/pop"), timeout=30)

    responses = race(12, act)
    appended = [item for r in responses if r.status_code == 201 for item in r.json()["items"]]
    popped = [r.json() for r in responses if r.status_code == 200]
    assert len(appended) == 18
    # A pop that ran while the history was empty found nothing: a 404, never a 5xx.
    assert all(r.status_code in (200, 201) or r.json()["code"] == "ITEM_NOT_FOUND" for r in responses), [
        r.status_code for r in responses
    ]
    assert len({item["id"] for item in popped}) == len(popped) >= 1
    remaining = all_items(live_server, user_session)
    everything = {item["id"] for item in remaining} | {item["id"] for item in popped}
    assert len(everything) == len(remaining) + len(popped) == 19
    seqs = [item["seq"] for item in remaining] + [item["seq"] for item in popped]
    assert len(set(seqs)) == len(seqs)
