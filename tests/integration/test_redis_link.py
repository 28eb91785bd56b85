"""The Redis link on real sockets: a client per thread, connected when first asked
for; a stalled Redis holds up only its own caller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from service.cache.redis_link import RedisLink
from tests.support.redisdb import shared_redis_url


def test_each_thread_calls_on_a_client_of_its_own() -> None:
    link = RedisLink(shared_redis_url(), timeout_seconds=0.25, retry_interval=1)
    mine = link.client
    assert link.client is mine
    theirs: list[redis.Redis] = []
    thread = threading.Thread(target=lambda: theirs.append(link.client))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    assert mine.ping() and theirs[0].ping()


@pytest.fixture
def stalled_redis_url() -> Iterator[str]:
    """A server that accepts connections and never answers a command."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_threads_time_out_side_by_side_not_one_after_another(stalled_redis_url: str) -> None:
    link = RedisLink(stalled_redis_url, timeout_seconds=0.3, retry_interval=1)
    waited: list[float] = []

    def call() -> None:
        started = time.monotonic()
        with pytest.raises(redis.RedisError):
            link.client.get("k")
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waited) == 6
    assert max(waited) < 1.0, waited  # queued behind each other they would take 1.8 s
