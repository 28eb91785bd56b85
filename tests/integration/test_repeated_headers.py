"""A header the service reads once, sent twice to a real gunicorn (which joins
repeated headers with commas), is a 400: never two keys taken as one."""

from __future__ import annotations

import json
import socket
import uuid

from tests.support.live import LiveServer


def raw_post(server: LiveServer, headers: list[tuple[str, str]], body: bytes) -> tuple[int, dict[str, object]]:
    port = int(server.base_url.rsplit(":", 1)[1])
    lines = [b"POST /user-sessions HTTP/1.1", b"Host: test", b"Connection: close", b"Content-Type: application/json"]
    lines += [f"{name}: {value}".encode() for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload) if payload.strip() else {}


def test_two_idempotency_keys_are_a_400_and_nothing_is_created(live_server: LiveServer) -> None:
    status, problem = raw_post(live_server, [("Idempotency-Key", "first"), ("Idempotency-Key", "second")], b"{}")
    assert status == 400
    assert problem["code"] == "INVALID_HEADER"
    assert "Idempotency-Key" in problem["errors"]  # type: ignore[operator]


def test_one_idempotency_key_still_replays(live_server: LiveServer) -> None:
    key = uuid.uuid4().hex
    first = raw_post(live_server, [("Idempotency-Key", key)], b'{"name": "Ada"}')
    again = raw_post(live_server, [("Idempotency-Key", key)], b'{"name": "Ada"}')
    assert first[0] == again[0] == 201
    assert first[1]["uuid"] == again[1]["uuid"]
