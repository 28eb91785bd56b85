"""A stalled Redis (``DEBUG SLEEP``) never makes a read older than an
acknowledged write, on the instance that acknowledged it; and on the other
instance only until the invalidation can land.

Two gunicorns with two workers each share a database and a private Redis
that the test puts to sleep twice while readers hammer both instances and a
writer patches several sessions through either. Every request is recorded;
afterwards a checker goes through the history and flags each read that
started after a write was acknowledged and returned an older version:

- on the instance that acknowledged the write: always (whichever worker);
- on the other instance: once Redis had answered again for long enough that
  the owed invalidation could land (the breaker's pause, a timeout and a
  second of slack), and for any write made while Redis was awake at once;
  never later than ``CACHE_TTL`` in any case.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from tests.support.live import LiveServer, start_gunicorn
from tests.support.redisdb import PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.timing]

TIMEOUT = 10
SESSIONS = 4
SLEEP_SECONDS = 2.0
REDIS_TIMEOUT_MS = 300
RETRY_INTERVAL = 1
CACHE_TTL = 30
# How long after Redis answers again an owed invalidation may take to land:
# the breaker's pause after the last failure, one more timeout, and slack.
LANDING = RETRY_INTERVAL + REDIS_TIMEOUT_MS / 1000 + 1.0


@dataclass(frozen=True)
class Operation:
    kind: str  # "read" or "write"
    instance: int
    user_session: str
    started: float
    finished: float
    version: int


@dataclass(frozen=True)
class Stall:
    started: float
    finished: float


@pytest.fixture
def stalling_redis() -> Iterator[PrivateRedis]:
    """A private Redis that takes ``DEBUG SLEEP`` (skipped without ``redis-server``)."""
    server = PrivateRedis(debug_command=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def instances(
    live_database_url: str, stalling_redis: PrivateRedis, tmp_path: Path
) -> Iterator[tuple[LiveServer, LiveServer]]:
    environ = {
        "REDIS_URL": stalling_redis.url,
        "CACHE_MIN_READS": "1",  # every read asks the cache
        "CACHE_TTL": str(CACHE_TTL),
        "REDIS_TIMEOUT_MS": str(REDIS_TIMEOUT_MS),
        "REDIS_RETRY_INTERVAL": str(RETRY_INTERVAL),
    }
    servers: list[LiveServer] = []
    try:
        for index in range(2):
            servers.append(start_gunicorn(live_database_url, tmp_path / f"{index}.log", workers=2, environ=environ))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def stale_reads(history: list[Operation], stalls: list[Stall]) -> list[str]:
    """Each read that started after a write was acknowledged (where the rules
    above say it must see it) and returned an older version."""
    flagged: list[str] = []
    writes = [operation for operation in history if operation.kind == "write"]
    for read in (operation for operation in history if operation.kind == "read"):
        for write in writes:
            if write.user_session != read.user_session or write.version <= read.version:
                continue
            if read.started <= write.finished:
                continue  # concurrent with the write: either answer is right
            if read.instance == write.instance:
                rule = "on the instance that acknowledged it"
            else:
                overlapping = [
                    stall
                    for stall in stalls
                    if stall.started - 0.1 <= write.finished and write.started <= stall.finished
                ]
                must_land_by = max((stall.finished + LANDING for stall in overlapping), default=write.finished)
                if read.started <= min(must_land_by, write.finished + CACHE_TTL):
                    continue
                rule = "on the other instance, after the invalidation could land"
            flagged.append(
                f"read of v{read.version} at {read.started:.3f} on instance {read.instance} after v{write.version} "
                f"was acknowledged at {write.finished:.3f} on instance {write.instance} ({rule})"
            )
            break
    return flagged


def test_no_read_after_an_acknowledged_write_returns_an_older_version_while_redis_stalls(
    instances: tuple[LiveServer, LiveServer], stalling_redis: PrivateRedis
) -> None:
    history: list[Operation] = []
    errors: list[str] = []
    stop = threading.Event()
    created = [
        requests.post(instances[index % 2].url("/user-sessions"), json={}, timeout=TIMEOUT).json()["uuid"]
        for index in range(SESSIONS)
    ]
    for user_session in created:  # cached everywhere: the entries a stall may leave behind
        for server in instances:
            assert requests.get(server.url(f"/user-sessions/{user_session}"), timeout=TIMEOUT).status_code == 200

    def read_loop(instance: int, offset: int) -> None:
        client = requests.Session()
        count = offset
        while not stop.is_set():
            user_session = created[count % SESSIONS]
            count += 1
            started = time.monotonic()
            try:
                response = client.get(instances[instance].url(f"/user-sessions/{user_session}"), timeout=TIMEOUT)
            except requests.RequestException as error:
                errors.append(f"read: {error!r}")
                continue
            finished = time.monotonic()
            if response.status_code != 200:
                errors.append(f"read: {response.status_code}")
                continue
            history.append(Operation("read", instance, user_session, started, finished, response.json()["version"]))

    def write_loop() -> None:
        client = requests.Session()
        count = 0
        while not stop.is_set():
            instance, user_session = count % 2, created[(count // 2) % SESSIONS]
            count += 1
            started = time.monotonic()
            try:
                response = client.patch(
                    instances[instance].url(f"/user-sessions/{user_session}"),
                    json={"metadata": {"write": count}},
                    timeout=TIMEOUT,
                )
            except requests.RequestException as error:
                errors.append(f"write: {error!r}")
                continue
            finished = time.monotonic()
            if response.status_code != 200:
                errors.append(f"write: {response.status_code}")
                continue
            history.append(Operation("write", instance, user_session, started, finished, response.json()["version"]))
            time.sleep(0.02)

    threads = [threading.Thread(target=read_loop, args=(instance, offset)) for instance in (0, 1) for offset in (0, 1)]
    threads.append(threading.Thread(target=write_loop))
    for thread in threads:
        thread.start()
    stalls: list[Stall] = []
    admin = redis.Redis.from_url(stalling_redis.url, socket_timeout=None)
    try:
        for _ in range(2):
            time.sleep(1.0)
            started = time.monotonic()
            admin.execute_command("DEBUG", "SLEEP", str(SLEEP_SECONDS))
            stalls.append(Stall(started, time.monotonic()))
        time.sleep(LANDING + 1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert errors == []
    writes_in_stalls = [
        operation
        for operation in history
        if operation.kind == "write" and any(s.started <= operation.started <= s.finished for s in stalls)
    ]
    assert len(writes_in_stalls) >= 4, "writes were acknowledged while Redis slept"
    assert sum(operation.kind == "read" for operation in history) > 100
    assert stale_reads(history, stalls) == []
    # And every instance reads the last write of each session now.
    for user_session in created:
        last = max(op.version for op in history if op.kind == "write" and op.user_session == user_session)
        for server in instances:
            read = requests.get(server.url(f"/user-sessions/{user_session}"), timeout=TIMEOUT).json()
            assert read["version"] == last
