"""The Redis link on real sockets: a connection per thread, connected when first
asked for; a stalled Redis holds up only its own caller."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.cache.redis_address import RedisAddress
from service.cache.redis_connection import RedisConnection, RedisConnectionError, RedisReplyError
from service.cache.redis_link import RedisLink
from tests.support.live import free_port
from tests.support.redisdb import PrivateRedis, shared_redis_url
from tests.support.requirements import require_program
from tests.support.waiting import wait_until


def test_each_thread_calls_on_a_connection_of_its_own() -> None:
    link = RedisLink(shared_redis_url(), timeout_seconds=0.25, retry_interval=1)
    mine = link.connection
    assert link.connection is mine
    theirs: list[RedisConnection] = []
    thread = threading.Thread(target=lambda: theirs.append(link.connection))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    assert mine.call("PING") == b"PONG" and theirs[0].call("PING") == b"PONG"


@pytest.fixture
def stalled_redis_url() -> Iterator[str]:
    """A server that accepts connections and never answers a command."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.timing
def test_threads_time_out_side_by_side_not_one_after_another(stalled_redis_url: str) -> None:
    link = RedisLink(stalled_redis_url, timeout_seconds=0.3, retry_interval=1)
    waited: list[float] = []

    def call() -> None:
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            link.command("GET", "k")
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waited) == 6
    assert max(waited) < 1.0, waited  # queued behind each other they would take 1.8 s


def test_it_logs_in_and_selects_the_database_of_its_url() -> None:
    server = PrivateRedis()
    server.start()
    try:
        redis.Redis.from_url(server.url).config_set("requirepass", "s@cret")
        link = RedisLink(f"redis://:s%40cret@127.0.0.1:{server.port}/3", timeout_seconds=1, retry_interval=1)
        assert link.command("SET", "k", "v") == b"OK"
        assert redis.Redis.from_url(f"redis://:s%40cret@127.0.0.1:{server.port}/3").get("k") == b"v"

        refused = RedisLink(f"redis://:wrong@127.0.0.1:{server.port}/3", timeout_seconds=1, retry_interval=1)
        with pytest.raises(RedisReplyError) as refusal:
            refused.command("GET", "k")
        assert refusal.value.code == "WRONGPASS"
    finally:
        server.stop()


def test_a_reply_that_is_not_redis_is_a_connection_error() -> None:
    server = socket.create_server(("127.0.0.1", 0))

    def answer_nonsense() -> None:
        connection = server.accept()[0]
        connection.recv(1024)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        connection.close()

    thread = threading.Thread(target=answer_nonsense, daemon=True)
    thread.start()
    link = RedisLink(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout_seconds=1, retry_interval=1)
    with pytest.raises(RedisConnectionError):
        link.command("GET", "k")
    thread.join()
    server.close()


def test_after_a_timeout_the_late_reply_is_never_taken_for_the_next_one() -> None:
    """The connection that timed out is dropped: its late reply dies with it."""
    server = PrivateRedis(debug_command=True)
    server.start()
    try:
        link = RedisLink(server.url, timeout_seconds=0.5, retry_interval=1)
        assert link.command("SET", "k", "first") == b"OK"
        with pytest.raises(RedisConnectionError):
            link.command("DEBUG", "SLEEP", "1.5")
        redis.Redis.from_url(server.url, socket_timeout=10).ping()  # answered once Redis has slept
        assert link.command("GET", "k") == b"first"
        assert link.command("ECHO", "second") == b"second"
    finally:
        server.stop()


def test_it_reaches_redis_over_a_unix_socket_with_a_password_and_a_database(tmp_path: Path) -> None:
    server = PrivateRedis()
    socket_path = tmp_path / "redis.sock"
    server.options += ["--unixsocket", str(socket_path)]
    server.start()
    try:
        redis.Redis.from_url(server.url).config_set("requirepass", "pw")
        link = RedisLink(f"unix://:pw@{socket_path}?db=2", timeout_seconds=1, retry_interval=1)
        assert link.command("SET", "k", "v") == b"OK"
        assert redis.Redis(unix_socket_path=str(socket_path), password="pw", db=2).get("k") == b"v"
    finally:
        server.stop()


def test_a_server_that_became_a_replica_is_left_for_a_new_connection() -> None:
    """After a failover the old primary answers writes with READONLY: the connection is
    dropped, so the next call connects again (to whatever the address serves by then)."""
    server = PrivateRedis()
    server.start()
    try:
        link = RedisLink(server.url, timeout_seconds=1, retry_interval=1)
        first = link.command("CLIENT", "ID")
        admin = redis.Redis.from_url(server.url)
        admin.replicaof("127.0.0.1", free_port())  # a replica of nothing: it refuses writes
        with pytest.raises(RedisReplyError) as refusal:
            link.command("SET", "k", "v")
        assert refusal.value.code == "READONLY"
        admin.replicaof("NO", "ONE")
        assert link.command("SET", "k", "v") == b"OK"
        assert link.command("CLIENT", "ID") != first

        with pytest.raises(RedisReplyError):
            link.command("NOSUCHCOMMAND")
        kept = link.command("CLIENT", "ID")
        assert link.command("CLIENT", "ID") == kept, "any other error reply keeps the connection"
    finally:
        server.stop()


def test_it_speaks_tls_and_checks_the_certificate_unless_told_not_to(tmp_path: Path) -> None:
    """``rediss://``: the server's certificate must be signed by a trusted CA (``ssl_ca_certs``
    names one) unless ``ssl_cert_reqs=none``."""
    certificate, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    subprocess.run(
        [require_program("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [require_program("redis-server"), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certificate), "--tls-key-file", str(key), "--tls-ca-cert-file", str(certificate),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        trusting = RedisLink(
            f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificate}", timeout_seconds=1, retry_interval=1
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                assert trusting.command("PING") == b"PONG"
                break
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        unknown_ca = RedisLink(f"rediss://127.0.0.1:{port}/0", timeout_seconds=1, retry_interval=1)
        with pytest.raises(RedisConnectionError, match="SSLCertVerificationError"):
            unknown_ca.command("PING")
        unchecked = RedisLink(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none", timeout_seconds=1, retry_interval=1)
        assert unchecked.command("PING") == b"PONG"
    finally:
        server.kill()
        server.wait(timeout=10)


def test_a_connection_the_server_closed_while_idle_is_made_again_before_use() -> None:
    """Redis's ``timeout`` (or a restart) closes idle connections: the next call connects
    again instead of failing, which would open the breaker and owe an invalidation."""
    server = PrivateRedis()
    server.start()
    try:
        redis.Redis.from_url(server.url).config_set("timeout", 1)
        link = RedisLink(server.url, timeout_seconds=1, retry_interval=1)
        first = link.command("CLIENT", "ID")
        admin = redis.Redis.from_url(server.url, socket_timeout=10)
        # Redis closes a client idle for over a second, looking a few times a second.
        wait_until(
            lambda: all(int(client["id"]) != first for client in admin.client_list()),
            "Redis to close the idle connection",
            every=0.1,
        )
        assert link.command("CLIENT", "ID") != first
    finally:
        server.stop()


@pytest.mark.timing
def test_a_host_name_the_resolver_sits_on_times_out_like_any_other_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver takes no timeout of its own: a lookup that hangs is given up
    on after REDIS_TIMEOUT_MS, as a connect or a reply would be."""
    resolve = socket.getaddrinfo

    def sitting_on(host: str, *args: object, **kwargs: object) -> object:
        if host == "redis.unanswered.test":
            time.sleep(3)
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", sitting_on)
    link = RedisLink("redis://redis.unanswered.test:6379/0", timeout_seconds=0.3, retry_interval=1)
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        link.command("PING")
    assert time.monotonic() - started < 1.5


def test_a_host_name_is_resolved() -> None:
    url = shared_redis_url().replace("127.0.0.1", "localhost")
    link = RedisLink(url, timeout_seconds=1, retry_interval=1)
    assert link.command("PING") == b"PONG"


def test_each_address_of_a_host_name_is_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name may resolve first to an address where nothing listens (``localhost``
    to ::1, say): the next one is tried."""
    url = shared_redis_url()
    resolve = socket.getaddrinfo
    port = RedisAddress.from_url(url).port
    nobody_listens = ("127.0.0.2", free_port())  # the test Redis listens on 127.0.0.1 only

    def two_addresses(host: str, *args: object, **kwargs: object) -> object:
        if host != "redis.two-addresses.test":
            return resolve(host, *args, **kwargs)  # type: ignore[arg-type]
        stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        return [(*stream, nobody_listens), (*stream, ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    link = RedisLink(url.replace("127.0.0.1", "redis.two-addresses.test"), timeout_seconds=1, retry_interval=1)
    assert link.command("PING") == b"PONG"
