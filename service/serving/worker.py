"""``BufferingThreadWorker``: slow clients wait in the poller, not in a thread.

gunicorn's gthread worker parks kept-alive connections in its poller, but a
thread it hands a connection to reads the request itself, blocking until the
last header line and body byte come in: a few clients trickling bytes take
every thread. This worker reads requests in its main loop, without blocking,
and runs a request only once it is whole (``service.serving.framing``), or is
already bound for a refusal, with its bytes in the parser's buffer: on a
thread of the pool, or with a single thread (the default) on the main thread
itself. Everything else (parsing, limits, keep-alive, the app) is gthread's
own, but for one addition: the app learns which headers a request sent more
than once (``service.api.headers``), which WSGI's one string per name hides.

A liveness probe (``GET``/``HEAD /healthz``, no I/O) is never queued behind
requests waiting on a database that stopped answering: with several threads
the loop answers it itself, with one a stand-in thread does
(``service.serving.stand_in``). Connections are spread evenly over the
workers (``service.serving.shares``).

gunicorn loads it by name (``worker_class`` in ``gunicorn.conf.py``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

from service.api.headers import REPEATED_HEADERS
from service.serving.connection import RECV_SIZE, BufferedConn, is_liveness_probe, make_ready
from service.serving.framing import (
    BODY_BUFFER_LIMIT,
    CUT_SHORT,
    HEAD_LIMIT,
    HEAD_TOO_LARGE,
    WAIT,
    WAIT_FOR_CONTINUE,
    request_state,
)
from service.serving.shares import SHARE_RECHECK_SECONDS, connection_shares
from service.serving.stand_in import LivenessStandIn

# Seconds a request may take to arrive whole from its first byte; then 408 and the connection is closed.
REQUEST_TIMEOUT = int(os.environ.get("GUNICORN_REQUEST_TIMEOUT") or 15)


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker; a request is run only once it has arrived whole."""

    LINGER_SECONDS = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_conns: dict[BufferedConn, None] = {}
        self.lingering: dict[socket.socket, float] = {}
        # The request each thread is running: handle_request sets it, the app's environ reads it.
        self.running = threading.local()
        # When the main thread started the request it is running (None between requests).
        self.busy_since: float | None = None

    @property
    def worker_connections(self) -> int:
        """gthread's cap on the connections it holds, read on every turn of its loop (it accepts
        only below it): the configured cap, or this worker's share of all (ConnectionShares)."""
        share = connection_shares.accept_limit(self.age, self.nr_conns, self.cfg.workers)
        return min(self._configured_connections, share)

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._configured_connections = value

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gthread's wait for events; but a worker that stopped accepting at its share looks again
        within SHARE_RECHECK_SECONDS, not a second: the others' counts change while it waits, and
        a new connection must not sit in the listen queue until it wakes."""
        if not self._accepting and self.alive:
            timeout = min(timeout, SHARE_RECHECK_SECONDS)
        super().wait_for_and_dispatch_events(timeout)

    def run(self) -> None:
        if self.cfg.threads == 1:
            LivenessStandIn(self).start()
        super().run()

    def adopt(self, conn: BufferedConn) -> None:
        """On the main thread: a connection the stand-in accepted, read on as if accepted here."""
        self.nr_conns += 1
        self.enqueue_req(conn)

    def load_wsgi(self) -> None:
        """The app, called with the names of the headers its request repeated in the environ."""
        super().load_wsgi()
        app: Callable[..., Any] = getattr(self, "wsgi")  # noqa: B009 (set by gunicorn, untyped)
        running = self.running

        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            environ[REPEATED_HEADERS] = getattr(running, "repeated_headers", frozenset())
            return app(environ, start_response)

        self.wsgi = wsgi

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(BufferedConn(self, self.cfg, client_sock, client_addr, listener.getsockname()))

    def enqueue_req(self, conn: TConn) -> None:
        """Called (on the main thread) for a new connection, a kept-alive one that turned readable,
        and one whose last read took in part of its next request: read on, hand it on when whole."""
        if (
            not isinstance(conn, BufferedConn)
            or conn.is_http2
            or self.cfg.is_ssl
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        ):
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        if conn.parser is not None:
            conn.received[:0] = conn.parser.unreader.take_buffered()
        if not conn.received:
            conn.started = False
            conn.deadline = time.monotonic() + self.cfg.keepalive
        self.receive(conn)

    def receive(self, conn: BufferedConn) -> None:
        ended = False  # the client sent all it will (closed, or half-closed after its request)
        try:
            while len(conn.received) <= HEAD_LIMIT + BODY_BUFFER_LIMIT:
                data = conn.sock.recv(RECV_SIZE)
                if not data:
                    ended = True
                    break
                conn.received += data
                if len(data) < RECV_SIZE:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(conn)
            return
        if conn.received and not conn.started:
            conn.started = True
            conn.deadline = time.monotonic() + REQUEST_TIMEOUT
        state = request_state(conn.received, self.cfg.limit_request_line)
        if ended and state in (WAIT, WAIT_FOR_CONTINUE):
            self.drop(conn)  # gone before its request was whole
            return
        if state in (WAIT, WAIT_FOR_CONTINUE):
            if state == WAIT_FOR_CONTINUE and not conn.continue_sent:
                conn.continue_sent = True
                self.send_quietly(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            if not conn.reading:
                conn.reading = True
                self.reading_conns[conn] = None
                self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_readable, conn))
            return
        self.stop_reading(conn)
        if state == HEAD_TOO_LARGE:
            error = LimitRequestHeaders(f"request head over {HEAD_LIMIT} bytes")
            with contextlib.suppress(OSError):  # gunicorn's own 431, as for its other header limits
                self.handle_error(None, conn.sock, conn.client, error)
            self.drop(conn, graceful=True)
            return
        if state == CUT_SHORT:
            # The thread gets what has come and then the end of the stream, never a wait.
            conn.cut_short = True
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RD)
        conn.started = False
        to_pool = self.cfg.threads > 1 and not is_liveness_probe(conn.received)
        make_ready(conn)
        if to_pool:
            super().enqueue_req(conn)
            return
        # One thread: the main thread runs the request itself, as a sync worker would, with no
        # hand-over to a thread of its own (nor that thread's memory); the request has arrived, so
        # nothing in it waits on the client. What follows it runs on the next turn of the loop.
        # Several: the pool's threads may all be waiting on the database, so a liveness probe
        # (no I/O) is answered here too.
        done: futures.Future[bool] = futures.Future()
        self.busy_since = time.monotonic()
        try:
            done.set_result(self.handle(conn))
        finally:
            self.busy_since = None
        self.method_queue.defer(self.finish_request, conn, done)

    def on_request_readable(self, conn: BufferedConn, _sock: socket.socket) -> None:
        self.receive(conn)

    def stop_reading(self, conn: BufferedConn) -> None:
        if conn.reading:
            conn.reading = False
            del self.reading_conns[conn]
            self.poller.unregister(conn.sock)

    def drop(self, conn: BufferedConn, graceful: bool = False) -> None:
        """Close a connection that is reading a request (``graceful``: after an answer)."""
        self.stop_reading(conn)
        self.nr_conns -= 1
        conn.close(graceful)

    def send_quietly(self, conn: BufferedConn, data: bytes) -> None:
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def handle_request(self, req: Any, conn: TConn) -> bool:
        self.running.repeated_headers = repeated_headers(req.headers)
        if getattr(conn, "continue_sent", False):
            conn.continue_sent = False
            req._expected_100_continue = False  # this worker sent it while the body was awaited
        result: bool = super().handle_request(req, conn)
        return result

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        if getattr(conn, "cut_short", False):
            return False
        result: bool = super()._keepalive_after(conn, keepalive)
        return result

    def linger(self, sock: socket.socket) -> None:
        """Close ``sock`` after the client's FIN (or LINGER_SECONDS), so a response the client has
        not read yet is not cut off by a reset (RFC 9112 9.6), without blocking the main loop."""
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, self.on_lingering_readable)
        except (OSError, ValueError, KeyError):
            gunicorn_util.close(sock)
            return
        self.lingering[sock] = time.monotonic() + self.LINGER_SECONDS

    def on_lingering_readable(self, sock: socket.socket) -> None:
        try:
            if sock.recv(RECV_SIZE):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.stop_lingering(sock)

    def stop_lingering(self, sock: socket.socket) -> None:
        del self.lingering[sock]
        with contextlib.suppress(KeyError, ValueError):
            self.poller.unregister(sock)
        gunicorn_util.close(sock)

    def murder_pending(self) -> None:
        """Once a loop: close what waited too long (and, when stopping, every incomplete request)."""
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.reading_conns):
            if conn.started and conn.deadline <= now and self.alive:
                self.send_quietly(conn, _REQUEST_TIMEOUT_RESPONSE)
                self.drop(conn, graceful=True)
            elif conn.deadline <= now or not self.alive:
                self.drop(conn)
        for sock, deadline in list(self.lingering.items()):
            if deadline <= now:
                self.stop_lingering(sock)


def repeated_headers(headers: list[tuple[str, str]]) -> frozenset[str]:
    """The (upper-case) names that ``headers``, a request's as gunicorn parsed them, hold twice or more."""
    names = [name for name, _value in headers]
    if len(set(names)) == len(names):
        return frozenset()
    counts = Counter(names)
    return frozenset(name for name, count in counts.items() if count > 1)


_REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
