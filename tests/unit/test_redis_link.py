"""The Redis link connects to nothing until a thread first asks for its connection,
and reads every setting of ``REDIS_URL``."""

from __future__ import annotations

import pytest

from service.cache.redis_connection import RedisAddress, RedisReplyError, Script
from service.cache.redis_link import RedisLink

NOWHERE = "redis://127.0.0.1:1/0"


def test_making_a_link_connects_to_nothing() -> None:
    RedisLink(NOWHERE, timeout_seconds=0.25, retry_interval=1)  # unit tests may not connect: it would raise


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://cache.internal", RedisAddress(host="cache.internal")),
        ("redis://127.0.0.1:6380/2", RedisAddress(port=6380, db=2)),
        ("redis://:s%40cret@h:1/0", RedisAddress(host="h", port=1, password="s@cret")),
        ("redis://app:pw@h", RedisAddress(host="h", username="app", password="pw")),
        ("rediss://h:6390", RedisAddress(host="h", port=6390, tls=True)),
        ("redis://h?db=3", RedisAddress(host="h", db=3)),
        ("unix:///run/redis.sock?db=1", RedisAddress(path="/run/redis.sock", db=1)),
    ],
)
def test_the_url_says_where_and_how_to_log_in(url: str, address: RedisAddress) -> None:
    assert RedisAddress.from_url(url) == address


@pytest.mark.parametrize("url", ["http://h:6379", "h:6379", "redis://h/zero"])
def test_a_url_it_cannot_read_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        RedisAddress.from_url(url)


def test_an_error_reply_is_named_by_its_first_word() -> None:
    assert RedisReplyError("NOSCRIPT No matching script.").code == "NOSCRIPT"


def test_a_script_is_named_by_the_sha1_redis_gives_it() -> None:
    assert Script("return 1").sha == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
