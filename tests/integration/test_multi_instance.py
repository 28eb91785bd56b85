"""Two instances of the service behind an imaginary load balancer: two
gunicorns on different ports, one PostgreSQL, one Redis.

Nothing a request needs lives in one process: a write on one instance is
read at once on the other, conditional writes race fairly across them,
idempotency keys replay on either, and a Redis outage mid-run costs no
client an error while hits resume when Redis is back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.factories import create_live_user_session
from tests.support.databases import fresh_postgres_database, worker_id
from tests.support.live import LiveServer, migrate, start_gunicorn
from tests.support.redisdb import PrivateRedis, shared_redis_url

pytestmark = pytest.mark.slow

TIMEOUT = 10
WORKERS = 2


def metric_value(server: LiveServer, name: str, **labels: str) -> float:
    text = requests.get(server.url("/metrics"), timeout=TIMEOUT).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cache_hits(server: LiveServer) -> float:
    return metric_value(server, "cache_requests_total", result="hit")


@pytest.fixture(scope="module")
def shared_database_url() -> str:
    """Instances share one PostgreSQL (skipped without ``TEST_DATABASE_URL``)."""
    url = fresh_postgres_database(f"instances_{worker_id()}")
    migrate(url)
    return url


@pytest.fixture(scope="module")
def start_instance(
    shared_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LiveServer]]:
    """Starts gunicorns on the shared database (stopped when the module is done)."""
    servers: list[LiveServer] = []
    logs = tmp_path_factory.mktemp("instances")

    def start(**environ: str) -> LiveServer:
        log_path = Path(logs) / f"instance-{len(servers)}.log"
        servers.append(start_gunicorn(shared_database_url, log_path, workers=WORKERS, environ=environ))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def instances(start_instance: Callable[..., LiveServer]) -> tuple[LiveServer, LiveServer]:
    redis_url = shared_redis_url()
    settings = {"REDIS_URL": redis_url, "CACHE_MIN_READS": "1"}  # every read asks the cache
    return start_instance(**settings), start_instance(**settings)


def path(user_session: dict[str, Any]) -> str:
    return f"/user-sessions/{user_session['uuid']}"


def test_a_write_on_one_instance_is_read_at_once_on_the_other(instances: tuple[LiveServer, LiveServer]) -> None:
    a, b = instances
    created = create_live_user_session(a)
    hits_before = cache_hits(b)
    reader = requests.Session()
    for round_ in range(20):
        for _ in range(2):  # cached on B, whichever of its workers answers
            assert reader.get(b.url(path(created)), timeout=TIMEOUT).json()["version"] == round_ + 1
        patched = requests.patch(a.url(path(created)), json={"name": f"round {round_}"}, timeout=TIMEOUT)
        assert patched.status_code == 200
        read = reader.get(b.url(path(created)), timeout=TIMEOUT)
        assert read.status_code == 200
        assert read.json() == patched.json()
        assert read.headers["ETag"] == patched.headers["ETag"] == f'"{round_ + 2}"'
    assert cache_hits(b) >= hits_before + 20, "B answered from the shared cache"

    assert requests.delete(a.url(path(created)), timeout=TIMEOUT).status_code == 204
    assert reader.get(b.url(path(created)), timeout=TIMEOUT).status_code == 404


def patch_version_1(
    server: LiveServer, user_session: dict[str, Any], name: str, start: threading.Barrier
) -> requests.Response:
    start.wait()
    headers = {"If-Match": '"1"'}
    return requests.patch(server.url(path(user_session)), json={"name": name}, headers=headers, timeout=TIMEOUT)


def test_concurrent_patches_with_one_if_match_on_two_instances_one_wins(
    instances: tuple[LiveServer, LiveServer],
) -> None:
    for _ in range(8):
        created = create_live_user_session(instances[0])
        for server in instances:
            assert requests.get(server.url(path(created)), timeout=TIMEOUT).status_code == 200
        start = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            racing = [
                pool.submit(patch_version_1, server, created, name, start)
                for server, name in zip(instances, ("from a", "from b"), strict=True)
            ]
            responses = [future.result() for future in racing]
        assert sorted(response.status_code for response in responses) == [200, 412]
        winner = next(response for response in responses if response.status_code == 200)
        for server in instances:
            read = requests.get(server.url(path(created)), timeout=TIMEOUT)
            assert read.json() == winner.json()
            assert read.headers["ETag"] == '"2"'


def test_an_idempotency_key_replayed_on_the_other_instance_replays(instances: tuple[LiveServer, LiveServer]) -> None:
    a, b = instances
    key = {"Idempotency-Key": f"multi-{uuid.uuid4()}"}
    first = requests.post(a.url("/user-sessions"), json={"name": "once"}, headers=key, timeout=TIMEOUT)
    replayed = requests.post(b.url("/user-sessions"), json={"name": "once"}, headers=key, timeout=TIMEOUT)
    assert first.status_code == replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert replayed.content == first.content
    assert replayed.headers["Location"] == first.headers["Location"]
    assert replayed.headers["ETag"] == first.headers["ETag"]
    other_body = requests.post(b.url("/user-sessions"), json={"name": "twice"}, headers=key, timeout=TIMEOUT)
    assert other_body.status_code == 422

    # A restore replayed on the other instance does not run twice either.
    created = first.json()
    assert requests.delete(a.url(path(created)), timeout=TIMEOUT).status_code == 204
    restore_key = {"Idempotency-Key": f"multi-{uuid.uuid4()}"}
    restored = requests.post(b.url(path(created) + "/restore"), headers=restore_key, timeout=TIMEOUT)
    again = requests.post(a.url(path(created) + "/restore"), headers=restore_key, timeout=TIMEOUT)
    assert restored.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == restored.content
    assert requests.get(a.url(path(created)), timeout=TIMEOUT).json() == restored.json()


def test_no_read_on_either_instance_is_behind_an_acknowledged_write(
    instances: tuple[LiveServer, LiveServer],
) -> None:
    """Readers hammer both instances while writes alternate between them; a
    read that starts after a write was acknowledged sees it or a newer one."""
    created = create_live_user_session(instances[0])
    acknowledged = [1]
    stale: list[tuple[int, int]] = []
    failures: list[int] = []
    stop = threading.Event()

    def read_loop(server: LiveServer) -> None:
        reader = requests.Session()
        while not stop.is_set():
            floor = acknowledged[-1]
            response = reader.get(server.url(path(created)), timeout=TIMEOUT)
            if response.status_code != 200:
                failures.append(response.status_code)
            elif response.json()["version"] < floor:
                stale.append((response.json()["version"], floor))

    readers = [threading.Thread(target=read_loop, args=(server,)) for server in (*instances, *instances)]
    for thread in readers:
        thread.start()
    try:
        writer = requests.Session()
        for round_ in range(40):
            server = instances[round_ % 2]
            response = writer.patch(server.url(path(created)), json={"metadata": {"round": round_}}, timeout=TIMEOUT)
            assert response.status_code == 200
            acknowledged.append(response.json()["version"])
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert failures == []
    assert stale == []


def test_redis_stopped_mid_run_costs_no_client_an_error_and_hits_resume(
    start_instance: Callable[..., LiveServer],
    private_redis: PrivateRedis,
) -> None:
    environ = {"REDIS_URL": private_redis.url, "REDIS_RETRY_INTERVAL": "1", "REDIS_TIMEOUT_MS": "200"}
    a, b = start_instance(**environ), start_instance(**environ)
    created = create_live_user_session(a)
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def traffic(server: LiveServer, writes: bool) -> None:
        client = requests.Session()
        while not stop.is_set():
            try:
                if writes:
                    response = client.patch(server.url(path(created)), json={"name": "x"}, timeout=TIMEOUT)
                    client.patch(server.url(path(created)), json={"name": None}, timeout=TIMEOUT)
                else:
                    response = client.get(server.url(path(created)), timeout=TIMEOUT)
                statuses.append(response.status_code)
            except requests.RequestException as error:
                errors.append(repr(error))
            time.sleep(0.005)

    threads = [
        threading.Thread(target=traffic, args=(a, False)),
        threading.Thread(target=traffic, args=(b, False)),
        threading.Thread(target=traffic, args=(b, True)),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for_hits(a, b)
        private_redis.stop()
        outage_started = len(statuses)
        time.sleep(1.5)
        assert len(statuses) > outage_started, "requests go on while Redis is down"
        assert requests.get(a.url("/readyz"), timeout=TIMEOUT).json()["cache"] == "unavailable"
        private_redis.start()
        wait_for_hits(a, b)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert set(statuses) == {200}
    assert requests.get(a.url("/readyz"), timeout=TIMEOUT).json()["cache"] == "ok"
    assert metric_value(a, "cache_requests_total", result="error") > 0
    # And the cache is coherent again: a write on one is read on the other.
    patched = requests.patch(b.url(path(created)), json={"name": "after"}, timeout=TIMEOUT)
    assert requests.get(a.url(path(created)), timeout=TIMEOUT).json() == patched.json()


def wait_for_hits(*servers: LiveServer, timeout: float = 15) -> None:
    """Until every server's ``cache_requests_total{result="hit"}`` grows."""
    before = {server.base_url: cache_hits(server) for server in servers}
    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting:
        waiting = [server for server in waiting if cache_hits(server) <= before[server.base_url]]
        if waiting and time.monotonic() > deadline:
            raise AssertionError(f"no cache hits on {[server.base_url for server in waiting]} within {timeout} s")
        time.sleep(0.1)
