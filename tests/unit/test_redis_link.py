"""The Redis link connects to nothing until a thread first asks for its connection,
and reads every setting of ``REDIS_URL``."""

from __future__ import annotations

import pytest

from service.cache.redis_address import RedisAddress
from service.cache.redis_connection import RedisReplyError, Script
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
        ("unix://:pw@/run/my%20redis.sock", RedisAddress(path="/run/my redis.sock", password="pw")),
        ("redis://[::1]:6379/0", RedisAddress(host="::1")),
        ("redis://", RedisAddress()),
        ("redis://app:@h", RedisAddress(host="h", username="app")),  # no password: no AUTH
        ("rediss://h?ssl_cert_reqs=none", RedisAddress(host="h", tls=True, verify_tls=False)),
        ("rediss://h?ssl_ca_certs=/etc/ca.pem", RedisAddress(host="h", tls=True, ca_file="/etc/ca.pem")),
    ],
)
def test_the_url_says_where_and_how_to_log_in(url: str, address: RedisAddress) -> None:
    assert RedisAddress.from_url(url) == address


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h:6379", "must start with"),
        ("h:6379", "must start with"),
        ("redis://h/zero", "database is a number"),
        ("redis://h/-1", "database is a number"),
        ("redis://h/²", "database is a number"),
        ("redis://h:0", "port is 1 to 65535"),
        ("redis://a..b", "not a valid host name"),
        ("unix://tmp/redis.sock", "takes a path and no host"),
        ("redis://h?socket_timeout=1", "an option other than"),
        ("redis://h?ssl_cert_reqs=none", "are for rediss://"),
        ("rediss://h?ssl_cert_reqs=optional", "required or none"),
        # Unencoded, these cut the URL short: the error must not quote what is left of the password.
        ("redis://:hunter2#x@h:6379", "not a URL"),
        ("redis://:hun/ter2@h", "not a URL"),
        ("redis://:hun?ter2@h", "not a URL"),
    ],
)
def test_a_url_it_cannot_read_is_refused_without_quoting_it(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URL cannot be read") as refusal:
        RedisAddress.from_url(url)
    assert reason in str(refusal.value)
    assert "hun" not in str(refusal.value)


def test_an_error_reply_is_named_by_its_first_word() -> None:
    assert RedisReplyError("NOSCRIPT No matching script.").code == "NOSCRIPT"


def test_a_script_is_named_by_the_sha1_redis_gives_it() -> None:
    assert Script("return 1").sha == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
