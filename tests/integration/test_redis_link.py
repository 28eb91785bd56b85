"""The Redis link on real sockets: a connection per thread, connected when first
asked for; a stalled Redis holds up only its own caller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from service.cache.redis_connection import RedisConnection, RedisConnectionError, RedisReplyError
from service.cache.redis_link import RedisLink
from tests.support.redisdb import PrivateRedis, shared_redis_url


def test_each_thread_calls_on_a_connection_of_its_own() -> None:
    link = RedisLink(shared_redis_url(), timeout_seconds=0.25, retry_interval=1)
    mine = link.connection
    assert link.connection is mine
    theirs: list[RedisConnection] = []
    thread = threading.Thread(target=lambda: theirs.append(link.connection))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    assert mine.call("PING") == b"PONG" and theirs[0].call("PING") == b"PONG"


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
        with pytest.raises(RedisConnectionError):
            link.command("GET", "k")
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waited) == 6
    assert max(waited) < 1.0, waited  # queued behind each other they would take 1.8 s


def test_it_logs_in_and_selects_the_database_of_its_url() -> None:
    server = PrivateRedis()
    server.start()
    try:
        redis.Redis.from_url(server.url).config_set("requirepass", "s@cret")
        link = RedisLink(f"redis://:s%40cret@127.0.0.1:{server.port}/3", timeout_seconds=1, retry_interval=1)
        assert link.command("SET", "k", "v") == b"OK"
        assert redis.Redis.from_url(f"redis://:s%40cret@127.0.0.1:{server.port}/3").get("k") == b"v"

        refused = RedisLink(f"redis://:wrong@127.0.0.1:{server.port}/3", timeout_seconds=1, retry_interval=1)
        with pytest.raises(RedisReplyError) as refusal:
            refused.command("GET", "k")
        assert refusal.value.code == "WRONGPASS"
    finally:
        server.stop()


def test_a_reply_that_is_not_redis_is_a_connection_error() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def answer_nonsense() -> None:
        connection = server.accept()[0]
        connection.recv(1024)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        connection.close()

    thread = threading.Thread(target=answer_nonsense, daemon=True)
    thread.start()
    link = RedisLink(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout_seconds=1, retry_interval=1)
    with pytest.raises(RedisConnectionError):
        link.command("GET", "k")
    thread.join()
    server.close()


def test_after_a_timeout_the_late_reply_is_never_taken_for_the_next_one() -> None:
    """The connection that timed out is dropped: its late reply dies with it."""
    server = PrivateRedis(debug_command=True)
    server.start()
    try:
        link = RedisLink(server.url, timeout_seconds=0.2, retry_interval=1)
        assert link.command("SET", "k", "first") == b"OK"
        with pytest.raises(RedisConnectionError):
            link.command("DEBUG", "SLEEP", "0.5")
        time.sleep(0.5)
        assert link.command("GET", "k") == b"first"
        assert link.command("ECHO", "second") == b"second"
    finally:
        server.stop()
