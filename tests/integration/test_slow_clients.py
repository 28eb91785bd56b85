"""Slow or stalled clients never keep the service from others.

The contract: with 50 connections trickling their headers, 50 trickling a
body and 50 idle kept-alive connections open, ``/healthz`` and an
authenticated read still answer within a second. Here against a real
gunicorn (``gunicorn.conf.py``, three workers), on loopback, for a few
seconds; the hostile connections send a byte each every quarter second and
never finish a request.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer, start_gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.timing]

API_KEY = "slow-clients-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
EACH = 50  # connections of each kind
PROBE_SECONDS = 4.0
ANSWER_WITHIN = 1.0  # seconds
TRICKLE_EVERY = 0.25  # seconds between two bytes of one connection


@pytest.fixture
def server(live_database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_gunicorn(live_database_url, tmp_path / "gunicorn.log", environ={"API_KEYS": API_KEY})
    yield server
    server.stop()


def address(server: LiveServer) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(address(server), timeout=5)


def endless_headers() -> Iterator[int]:
    """A request head that never ends: a request line, then header lines for ever, a byte at a time."""
    yield from b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for number in itertools.count():
        yield from b"X-Slow-%d: a\r\n" % number


def slow_body(length: int) -> tuple[bytes, Iterator[int]]:
    """A whole head announcing a body of ``length`` bytes (sent at once), and the body, never all of it."""
    head = (
        "POST /user-sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    return head.encode(), itertools.chain(b'{"name": "', itertools.repeat(ord("a")))


class Trickler(threading.Thread):
    """Sends each connection its next byte every TRICKLE_EVERY seconds until told to stop."""

    def __init__(self, streams: list[tuple[socket.socket, Iterator[int]]]) -> None:
        super().__init__(daemon=True)
        self.streams = streams
        self.stop = threading.Event()
        self.closed_by_server: set[int] = set()

    def run(self) -> None:
        while not self.stop.wait(TRICKLE_EVERY):
            for index, (connection, stream) in enumerate(self.streams):
                if index in self.closed_by_server:
                    continue
                try:
                    connection.send(bytes([next(stream)]))
                except OSError:
                    self.closed_by_server.add(index)


def idle_kept_alive(server: LiveServer) -> socket.socket:
    """A connection that made one request, was answered, and then says nothing."""
    connection = connect(server)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    deadline = time.monotonic() + 5
    while b'"ok"' not in answer and time.monotonic() < deadline:
        chunk = connection.recv(4096)
        if not chunk:
            break
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return connection


def probe(url: str, **headers: str) -> str | None:
    """None when ``url`` answers 200 within ANSWER_WITHIN on a new connection, else what went wrong."""
    started = time.monotonic()
    try:
        response = requests.get(url, headers=headers, timeout=ANSWER_WITHIN + 1)
    except requests.RequestException as error:
        return f"{type(error).__name__} after {time.monotonic() - started:.2f} s"
    elapsed = time.monotonic() - started
    if response.status_code != 200 or elapsed > ANSWER_WITHIN:
        return f"{response.status_code} after {elapsed:.2f} s"
    return None


def test_slow_and_stalled_clients_never_keep_the_service_from_others(server: LiveServer) -> None:
    created = requests.post(server.url("/user-sessions"), json={"name": "Ada"}, headers=AUTH, timeout=10)
    assert created.status_code == 201, created.text
    session_url = server.url(f"/user-sessions/{created.json()['uuid']}")

    idle = [idle_kept_alive(server) for _ in range(EACH)]
    streams = [(connect(server), endless_headers()) for _ in range(EACH)]
    for _ in range(EACH):
        connection, (head, body) = connect(server), slow_body(4096)
        connection.sendall(head)
        streams.append((connection, body))
    trickler = Trickler(streams)
    trickler.start()
    failures: list[str] = []
    probes = 0
    try:
        time.sleep(0.5)  # every trickling connection has sent a byte or two
        until = time.monotonic() + PROBE_SECONDS
        while time.monotonic() < until:
            for name, url, headers in (("/healthz", server.url("/healthz"), {}), ("GET", session_url, AUTH)):
                failure = probe(url, **headers)
                probes += 1
                if failure:
                    failures.append(f"{name} at {PROBE_SECONDS - (until - time.monotonic()):.1f} s: {failure}")
            time.sleep(0.1)
    finally:
        trickler.stop.set()
        trickler.join(timeout=5)
        for connection in idle + [connection for connection, _ in streams]:
            connection.close()

    assert not failures, f"{len(failures)} of {probes} probes failed: {failures[:6]}"
    assert probes >= 10
    # The attack held for the whole time: the server closed (almost) none of the trickling connections.
    assert len(trickler.closed_by_server) <= EACH // 10, f"{len(trickler.closed_by_server)} closed by the server"
