"""Redis for tests: the shared server when ``TEST_REDIS_URL`` is set, or a
private ``redis-server`` a test may kill and restart.

Tests on the shared server never flush it: they use keys of their own
(random API keys make random rate-limit buckets).
"""

from __future__ import annotations

import os
import subprocess
import time

import redis

from tests.support.live import free_port
from tests.support.requirements import require_program, require_redis_url

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")


def shared_redis_url() -> str:
    """The shared test Redis; the test is skipped when ``TEST_REDIS_URL`` is unset."""
    return require_redis_url()


def unreachable_redis_url() -> str:
    """A Redis URL nothing listens on: every connection is refused."""
    return f"redis://127.0.0.1:{free_port()}/0"


class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, that keeps nothing on disk."""

    def __init__(self, *, debug_command: bool = False) -> None:
        self.server = require_program("redis-server")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # ``DEBUG SLEEP`` (a Redis that stalls) is refused unless enabled (Redis 7+), from localhost only.
        self.options = ["--enable-debug-command", "local"] if debug_command else []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *self.options]
        self.process = subprocess.Popen(
            [self.server, *options],
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
