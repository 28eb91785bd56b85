"""What gunicorn (``gunicorn.conf.py``) does before the app sees a request.

Request headers never change routing: ``SCRIPT_NAME`` and the forwarding
headers count only from a configured trusted proxy (``FORWARDED_ALLOW_IPS``),
loopback included. gunicorn's own refusals (request line, header count and
size, the whole head) are HTML with ``Connection: close``, as documented in
docs/operations.md. And the buffering worker still serves what HTTP/1.1
allows: chunked bodies, ``Expect: 100-continue``, pipelined requests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer, start_gunicorn

pytestmark = pytest.mark.slow

API_KEY = "gunicorn-edges-test-key-0123456789"
AUTH = f"Authorization: Bearer {API_KEY}\r\n"


@pytest.fixture(scope="module")
def server(live_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    environ = {"API_KEYS": API_KEY, "GUNICORN_REQUEST_TIMEOUT": "2", "GUNICORN_KEEPALIVE": "2"}
    server = start_gunicorn(live_database_url, tmp_path_factory.mktemp("edges") / "gunicorn.log", environ=environ)
    yield server
    server.stop()


def exchange(server: LiveServer, *parts: bytes, pause: float = 0.0, wait: float = 5.0) -> bytes:
    """Send ``parts`` on one new connection (``pause`` s apart) and read until the server closes it or
    ``wait`` s pass."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        for part in parts:
            connection.sendall(part)
            time.sleep(pause)
        answer = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


def status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def test_a_script_name_header_from_loopback_changes_no_routing(server: LiveServer) -> None:
    assert requests.get(server.url("/healthz"), headers={"SCRIPT_NAME": "/elsewhere"}, timeout=5).status_code == 200
    mounted = requests.get(server.url("/mounted/healthz"), headers={"SCRIPT_NAME": "/mounted"}, timeout=5)
    assert mounted.status_code == 401  # an unknown path, not /healthz


def test_forwarding_headers_from_loopback_are_ignored(server: LiveServer) -> None:
    """From a trusted proxy, X-Forwarded-Proto and X-Forwarded-Ssl that disagree are a 400."""
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"}
    assert requests.get(server.url("/healthz"), headers=headers, timeout=5).status_code == 200


def test_a_configured_trusted_proxy_may_mount_the_service_under_a_prefix(
    live_database_url: str, tmp_path: Path
) -> None:
    proxied = start_gunicorn(live_database_url, tmp_path / "gunicorn.log", environ={"FORWARDED_ALLOW_IPS": "127.0.0.1"})
    try:
        response = requests.get(proxied.url("/mounted/healthz"), headers={"SCRIPT_NAME": "/mounted"}, timeout=5)
        assert response.status_code == 200
    finally:
        proxied.stop()


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        pytest.param(b"GET /" + b"a" * 8191 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414", id="request line over 8190"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-F%d: a\r\n" % n for n in range(101)) + b"\r\n",
            b"431",
            id="over 100 header fields",
        ),
        pytest.param(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 8200 + b"\r\n\r\n", b"431", id="field over 8190"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-F%d: %s\r\n" % (n, b"a" * 8000) for n in range(9)),
            b"431",
            id="head over 64 KiB",
        ),
        pytest.param(b"GET /healthz HTTP/1.1\nHost: x\n\n", b"400", id="bare LF"),
    ],
)
def test_gunicorn_refuses_oversized_or_malformed_heads_in_html(
    server: LiveServer, request_head: bytes, status: bytes
) -> None:
    answer = exchange(server, request_head)
    assert status_line(answer).startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: text/html" in head
    assert b"Connection: close" in head
    assert body.startswith(b"<html>")


def test_a_chunked_body_trickling_in_is_served_once_whole(server: LiveServer) -> None:
    body = b'{"name": "chunked"}'
    head = b"POST /user-sessions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n" % AUTH.encode()
    chunks = [b"%x\r\n%s\r\n" % (len(body[:7]), body[:7]), b"%x\r\n%s\r\n" % (len(body[7:]), body[7:]), b"0\r\n\r\n"]
    answer = exchange(server, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", *chunks, pause=0.2)
    assert status_line(answer) == b"HTTP/1.1 201 CREATED", answer[:300]
    assert b'"name":"chunked"' in answer.replace(b" ", b"")


def test_a_chunked_body_over_64_kib_is_a_413_never_cut_and_handled(server: LiveServer) -> None:
    body = b'{"name": "' + b"x" * 100 + b'", "metadata": {"pad": "' + b"y" * (70 * 1024) + b'"}}'
    head = b"POST /user-sessions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n" % AUTH.encode()
    chunks = [b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192]) for i in range(0, len(body), 8192)]
    answer = exchange(server, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", *chunks, b"0\r\n\r\n")
    assert status_line(answer) == b"HTTP/1.1 413 REQUEST ENTITY TOO LARGE", answer[:300]
    assert b"PAYLOAD_TOO_LARGE" in answer


def test_expect_100_continue_is_answered_once_before_the_body(server: LiveServer) -> None:
    body = b'{"name": "expecting"}'
    head = (
        b"POST /user-sessions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (AUTH.encode(), len(body))
    )
    answer = exchange(server, head, body, pause=0.5)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 CREATED\r\n"), answer[:300]
    assert answer.count(b"100 Continue") == 1


def test_pipelined_requests_are_each_answered(server: LiveServer) -> None:
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = exchange(server, one + one + one[:20], one[20:-2] + b"Connection: close\r\n\r\n", pause=0.3)
    assert answer.count(b"HTTP/1.1 200 OK") == 3, answer


@pytest.mark.timing
def test_a_request_that_does_not_arrive_in_time_is_a_408(server: LiveServer) -> None:
    """GUNICORN_REQUEST_TIMEOUT is 2 s here, from the request's first byte."""
    started = time.monotonic()
    answer = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", wait=6)
    assert status_line(answer) == b"HTTP/1.1 408 Request Timeout"
    assert 1.5 < time.monotonic() - started < 4.5


@pytest.mark.timing
def test_a_connection_that_sends_nothing_is_closed_after_the_keepalive(server: LiveServer) -> None:
    """GUNICORN_KEEPALIVE is 2 s here."""
    started = time.monotonic()
    assert exchange(server, wait=6) == b""
    assert 1.5 < time.monotonic() - started < 4.5
