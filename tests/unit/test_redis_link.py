"""The Redis link connects to nothing until a thread first asks for its client."""

from __future__ import annotations

from service.cache.redis_link import RedisLink

NOWHERE = "redis://127.0.0.1:1/0"


def test_making_a_link_connects_to_nothing() -> None:
    RedisLink(NOWHERE, timeout_seconds=0.25, retry_interval=1)  # unit tests may not connect: it would raise
