"""The service as operators run it: gunicorn with several workers and ``gunicorn.conf.py``.

Metrics summed over workers, one JSON line per request on stdout (no access
log), a rate limit shared by every worker through Redis, no acknowledged
write lost when a worker is killed with SIGKILL, and workers forked from a
master that loaded the app once and holds no connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer, start_gunicorn
from tests.support.redisdb import shared_redis_url
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

StartGunicorn = Callable[..., LiveServer]


def metric_value(server: LiveServer, name: str, **labels: str) -> float:
    text = requests.get(server.url("/metrics"), timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def workers_of(server: LiveServer) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def established_connections(pid: int) -> list[str]:
    """The remote addresses (hex, as /proc/net/tcp writes them) of ``pid``'s open TCP connections."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    remote = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == "01":  # 01: ESTABLISHED
                remote.append(fields[2])
    return remote


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def gunicorn(live_database_url: str, tmp_path: Path) -> Iterator[StartGunicorn]:
    """Starts gunicorns of the test's own (stopped afterwards)."""
    servers: list[LiveServer] = []

    def start(**environ: str) -> LiveServer:
        servers.append(start_gunicorn(live_database_url, tmp_path / f"gunicorn-{len(servers)}.log", environ=environ))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_metrics_are_summed_over_every_worker(live_server: LiveServer) -> None:
    """Concurrent requests spread over the workers; every scrape, whichever
    worker answers it, sees every request."""
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    log_offset = live_server.log_path.stat().st_size
    before = metric_value(live_server, "http_requests_total", **labels)

    # A worker can answer a quick request before its siblings wake up, so send
    # batches until more than one worker has answered (a bounded number).
    sent, pids = 0, set()
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _batch in range(20):
            statuses = pool.map(lambda _: requests.get(live_server.url("/healthz"), timeout=10).status_code, range(30))
            assert set(statuses) == {200}
            sent += 30
            with live_server.log_path.open("rb") as log:
                log.seek(log_offset)
                lines = [line for line in json_lines(log.read().decode()) if line.get("route") == "/healthz"]
            pids = {line["pid"] for line in lines}
            if len(pids) > 1:
                break
    assert len(pids) > 1, "more than one worker served them"

    scrapes = {metric_value(live_server, "http_requests_total", **labels) for _ in range(6)}
    assert scrapes == {before + sent}, "every scrape, whichever worker answers it, sees every worker's count"
    assert metric_value(live_server, "http_request_duration_seconds_count", **labels) == before + sent
    assert len(lines) == sent


def test_each_request_is_one_json_line_on_stdout_and_gunicorn_logs_no_access_line(live_server: LiveServer) -> None:
    correlation_id = "gunicorn-" + secrets.token_hex(8)
    response = requests.post(
        live_server.url("/user-sessions"),
        json={"email": "someone@example.org"},
        headers={"X-Correlation-ID": correlation_id},
        timeout=10,
    )
    assert response.status_code == 201
    wait_until(lambda: correlation_id in live_server.log(), "the request's log line", seconds=5)
    mine = [line for line in live_server.log().splitlines() if correlation_id in line]
    assert len(mine) == 1
    entry = json.loads(mine[0])
    assert (entry["method"], entry["route"], entry["status"]) == ("POST", "/user-sessions", 201)
    assert entry["logger"] == "service.requests"
    assert "someone@example.org" not in live_server.log()
    # gunicorn's access log would be a plain line quoting the request line.
    plain = [line for line in live_server.log().splitlines() if not line.startswith("{")]
    assert not [line for line in plain if re.search(r'"(GET|POST|HEAD) /', line)]


def test_the_rate_limit_is_shared_by_every_worker_through_redis(gunicorn: StartGunicorn) -> None:
    key = "key-" + secrets.token_hex(16)
    # REDIS_TIMEOUT_MS: a slow reply on a busy machine would send the count to each process's own.
    server = gunicorn(RATE_LIMIT="5/minute", REDIS_URL=shared_redis_url(), API_KEYS=key, REDIS_TIMEOUT_MS="2000")

    def read(_: int) -> int:
        url = server.url(f"/user-sessions/{uuid.uuid4()}")
        return requests.get(url, headers={"X-API-Key": key}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(read, range(16)))
    assert statuses.count(404) == 5
    assert statuses.count(429) == 11


def test_a_worker_killed_with_sigkill_loses_no_acknowledged_write(gunicorn: StartGunicorn) -> None:
    server: LiveServer = gunicorn()
    acknowledged: list[tuple[float, str]] = []
    unexpected: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def create_sessions() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                try:
                    response = http.post(server.url("/user-sessions"), json={"name": "durable"}, timeout=10)
                except requests.RequestException:
                    http.close()  # the worker died under this request: no answer, no promise
                    continue
                with lock:
                    if response.status_code == 201:
                        acknowledged.append((time.monotonic(), response.json()["uuid"]))
                    else:
                        unexpected.append(response.status_code)

    clients = [threading.Thread(target=create_sessions) for _ in range(3)]
    for client in clients:
        client.start()
    killed: list[int] = []
    try:
        for _ in range(3):
            time.sleep(0.4)
            # Not one killed before: the master may not have reaped it yet.
            victim = next(pid for pid in workers_of(server) if pid not in killed)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        killed_at = time.monotonic()
        wait_until(lambda: any(at > killed_at for at, _ in acknowledged), "a write acknowledged after the kills")
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=15)

    assert unexpected == []
    assert any(at > killed_at for at, _ in acknowledged), "nothing was created after the kills"
    with requests.Session() as http:
        for _, user_session_uuid in acknowledged:
            response = http.get(server.url(f"/user-sessions/{user_session_uuid}"), timeout=10)
            assert response.status_code == 200, user_session_uuid
            assert response.json()["name"] == "durable"
    # The master replaced every killed worker and kept serving.
    wait_until(lambda: len(workers_of(server)) == 3, "the master to replace every killed worker", every=0.1)
    assert not set(killed) & set(workers_of(server))
    assert server.process.poll() is None


def test_the_master_loads_the_app_once_and_no_connection_crosses_a_fork(gunicorn: StartGunicorn) -> None:
    """gunicorn.conf.py preloads the app: the workers are forked from a master
    that built it once (one start-up warning, not one per worker) and that
    never connects to the database, so no worker inherits a socket."""
    server = gunicorn(API_KEYS="")
    for _ in range(6):
        created = requests.post(server.url("/user-sessions"), json={"name": "Ada"}, timeout=10)
        assert created.status_code == 201
        assert requests.get(server.url(created.headers["Location"]), timeout=10).status_code == 200
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200

    assert server.log().count("API_KEYS is not set") == 1
    assert established_connections(server.process.pid) == []


def test_with_redis_the_master_never_connects_and_every_worker_reads_the_cache(gunicorn: StartGunicorn) -> None:
    """Each worker opens its own Redis connection on first use: none is made
    in the master, so none is shared across a fork."""
    server = gunicorn(REDIS_URL=shared_redis_url(), RATE_LIMIT="1000/minute", REDIS_TIMEOUT_MS="2000")
    created = requests.post(server.url("/user-sessions"), json={"name": "Ada"}, timeout=10)
    assert created.status_code == 201
    url = server.url(created.headers["Location"])
    bodies = {requests.get(url, timeout=10).content for _ in range(24)}
    assert len(bodies) == 1
    assert metric_value(server, "cache_requests_total", result="hit") >= 1
    assert metric_value(server, "cache_requests_total", result="error") == 0
    assert established_connections(server.process.pid) == []


def test_gunicorns_own_log_lines_are_written(gunicorn: StartGunicorn) -> None:
    """The service's logging settings leave gunicorn's records (pid and all) intact."""
    server = gunicorn()
    assert requests.get(server.url("/healthz"), timeout=10).status_code == 200
    log = server.log()
    assert "Booting worker with pid" in log
    assert "Logging error" not in log
