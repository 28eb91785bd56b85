"""A header the service reads once (Idempotency-Key, If-Match, If-None-Match),
sent twice to a real gunicorn (which joins repeated headers with commas), is a
400: never two values taken as one."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests

from tests.support.live import LiveServer


def raw_request(
    server: LiveServer, request_line: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, dict[str, object]]:
    """Send one request as written (headers repeated as given); its status and JSON body."""
    port = int(server.base_url.rsplit(":", 1)[1])
    lines = [request_line.encode(), b"Host: test", b"Connection: close", b"Content-Type: application/json"]
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


def raw_post(server: LiveServer, headers: list[tuple[str, str]], body: bytes) -> tuple[int, dict[str, object]]:
    return raw_request(server, "POST /user-sessions HTTP/1.1", headers, body)


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


def created(server: LiveServer) -> tuple[str, str]:
    response = requests.post(f"{server.base_url}/user-sessions", json={"name": "Ada"}, timeout=10)
    assert response.status_code == 201
    return response.json()["uuid"], response.headers["ETag"]


@pytest.mark.parametrize("header", ["If-Match", "if-match"])
def test_two_if_match_headers_are_a_400_and_nothing_changes(live_server: LiveServer, header: str) -> None:
    session, etag = created(live_server)
    # Each alone would match: joined, they would read as one header listing both.
    status, problem = raw_request(
        live_server, f"PATCH /user-sessions/{session} HTTP/1.1", [(header, etag), ("If-Match", etag)], b'{"name": "Bo"}'
    )
    assert status == 400
    assert problem["code"] == "INVALID_HEADER"
    current = requests.get(f"{live_server.base_url}/user-sessions/{session}", timeout=10)
    assert current.json()["name"] == "Ada"
    assert current.headers["ETag"] == etag


def test_one_if_match_header_listing_two_tags_still_matches(live_server: LiveServer) -> None:
    session, etag = created(live_server)
    status, _ = raw_request(
        live_server, f"PATCH /user-sessions/{session} HTTP/1.1", [("If-Match", f'"999", {etag}')], b'{"name": "Bo"}'
    )
    assert status == 200


def test_two_if_none_match_headers_are_a_400(live_server: LiveServer) -> None:
    session, etag = created(live_server)
    status, problem = raw_request(live_server, f"GET /user-sessions/{session} HTTP/1.1", [("If-None-Match", etag)] * 2)
    assert status == 400
    assert problem["code"] == "INVALID_HEADER"
    assert raw_request(live_server, f"GET /user-sessions/{session} HTTP/1.1", [("If-None-Match", etag)])[0] == 304
