"""A tiny HTTP/1.1 proxy on 127.0.0.1 that can lose answers on purpose.

Each request arrives on its own connection (the proxy answers with
``Connection: close``) and is handled by the next step of a plan:

- ``FORWARD``: pass it to the server and its answer back;
- ``LOSE_ANSWER``: pass it to the server, wait for the answer, then close the
  client's connection without sending it: the server acted, the client never
  learns;
- ``REFUSE``: close the connection before anything reaches the server;
- raw bytes: answer them instead of the server.

Once the plan is spent every request is forwarded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FORWARD = "forward"
LOSE_ANSWER = "lose-answer"
REFUSE = "refuse"


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    action: str | bytes


@dataclass
class LossyProxy:
    upstream: str
    plan: list[str | bytes] = field(default_factory=list)
    seen: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._upstream_address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def expect(self, steps: Iterable[str | bytes]) -> None:
        with self._lock:
            self.plan = list(steps)
            self.seen.clear()

    def stop(self) -> None:
        self._stopped.set()
        # Closing alone leaves accept() waiting; shutting the listener down wakes it.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            client.settimeout(10)
            request = _read_request(client)
            if request is None:
                return
            head, body = request
            method, path, headers = _parse_head(head)
            with self._lock:
                action = self.plan.pop(0) if self.plan else FORWARD
                self.seen.append(SeenRequest(method, path, headers, action))
            if action == REFUSE:
                return
            if isinstance(action, bytes):
                client.sendall(action)
                return
            answer = self._forward(_close_after(head) + body)
            if action == LOSE_ANSWER:
                client.shutdown(socket.SHUT_RDWR)
                return
            client.sendall(answer)

    def _forward(self, raw: bytes) -> bytes:
        with socket.create_connection(self._upstream_address, timeout=10) as upstream:
            upstream.sendall(raw)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return _close_after(b"".join(chunks), response=True)


def _read_request(client: socket.socket) -> tuple[bytes, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    _, _, headers = _parse_head(head)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n", body


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _close_after(message: bytes, *, response: bool = False) -> bytes:
    """The same message with ``Connection: close``, so each exchange has its own connection."""
    head, separator, rest = message.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + separator + rest if separator else message
