"""Redis for tests: the shared server when ``TEST_REDIS_URL`` is set, or a
private ``redis-server`` a test may kill and restart.

Tests on the shared server never flush it: they use keys of their own
(random API keys make random rate-limit buckets).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import redis

from tests.live import free_port

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
REQUIRE_ALL = "USER_SESSIONS_REQUIRE_ALL"


def require_redis_server() -> str:
    """The ``redis-server`` program, for a private Redis; the test is skipped
    without it (it fails instead under ``USER_SESSIONS_REQUIRE_ALL=1``)."""
    found = shutil.which("redis-server")
    if found is None:
        what = "needs redis-server: apt-get install redis-server"
        if os.environ.get(REQUIRE_ALL) == "1":
            pytest.fail(f"{what} ({REQUIRE_ALL}=1: nothing may be skipped)", pytrace=False)
        pytest.skip(what)
    return found


def shared_redis_url() -> str:
    """The shared test Redis; the test is skipped when ``TEST_REDIS_URL`` is unset."""
    if not TEST_REDIS_URL:
        pytest.skip("TEST_REDIS_URL is not set")
    return TEST_REDIS_URL


def unreachable_redis_url() -> str:
    """A Redis URL nothing listens on: every connection is refused."""
    return f"redis://127.0.0.1:{free_port()}/0"


class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, that keeps nothing on disk."""

    def __init__(self, *, debug_command: bool = False) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # ``DEBUG SLEEP`` (a Redis that stalls) is refused unless enabled (Redis 7+), from localhost only.
        self.options = ["--enable-debug-command", "local"] if debug_command else []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
