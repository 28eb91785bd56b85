"""Kept-alive connections spread evenly over the workers: a worker accepts
only while it holds no more than its share of all the workers' connections
(plus one), so no worker queues more clients' requests than another.

Against a real gunicorn with four workers; which worker holds which
connection is read from ``/proc`` (the sockets each worker process has open).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import LiveServer, start_gunicorn

pytestmark = pytest.mark.slow

WORKERS = 4
CONNECTIONS = 40


@pytest.fixture
def server(live_database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_gunicorn(live_database_url, tmp_path / "gunicorn.log", workers=WORKERS)
    yield server
    server.stop()


def port_of(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def workers_of(server: LiveServer) -> list[int]:
    pid = server.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def established_inodes(port: int) -> set[str]:
    """Inodes of the established TCP sockets whose local port is ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01":
            inodes.add(fields[9])
    return inodes


def connections_per_worker(server: LiveServer) -> dict[int, int]:
    inodes = established_inodes(port_of(server))
    counts = {}
    for worker in workers_of(server):
        held = 0
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[worker] = held
    return counts


def keep_alive_request(connection: socket.socket) -> None:
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_kept_alive_connections_spread_evenly_over_the_workers(server: LiveServer) -> None:
    connections = []
    try:
        for _ in range(CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", port_of(server)), timeout=10)
            connections.append(connection)
            keep_alive_request(connection)
        time.sleep(0.5)
        counts = connections_per_worker(server)
    finally:
        for connection in connections:
            connection.close()
    assert sum(counts.values()) == CONNECTIONS, counts
    share = CONNECTIONS // WORKERS
    # Its share plus one, and one more for two workers that took the last place at the same moment.
    assert max(counts.values()) <= share + 2, counts
    assert min(counts.values()) >= share - 2, counts
