"""``BufferingThreadWorker``: slow clients wait in the poller, not in a thread.

gunicorn's gthread worker parks kept-alive connections in its poller, but a
thread it hands a connection to reads the request itself, blocking until the
last header line and body byte come in: a few clients trickling bytes take
every thread. This worker reads requests in its main loop, without blocking,
and runs a request only once it is whole (or is already bound for a
refusal), with its bytes in the parser's buffer: on a thread of the pool, or
with a single thread (the default) on the main thread itself. Everything
else (parsing, limits, keep-alive, the app) is gthread's own, but for one
addition: the app learns which headers a request sent more than once
(``service.api.headers``), which WSGI's one string per name hides.

A liveness probe (``GET``/``HEAD /healthz``, no I/O) is never queued behind
requests waiting on a database that stopped answering. With several threads
the loop answers it itself. With one, a request that waits long holds the
loop, so a stand-in thread watches: once the main thread has been in one
request for STAND_IN_AFTER seconds, it accepts new connections itself,
answers probes on them through the app, and hands any other request (with
what it read of it) to the loop, which serves it when free.

Connections are spread evenly over the workers (:class:`ConnectionShares`). A
kept-alive connection stays with the worker that accepted it, and which
worker accepts is a race; with every client keeping its connection, a worker
that won more of them than its share serves their requests one behind
another for as long as they stay open, while another worker idles. So a
worker accepts only while it holds no more than its share (plus one) of all
the workers' connections.

gunicorn loads it by name (``worker_class`` in ``gunicorn.conf.py``); nothing
in the service imports it.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import select
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
from service.request_framing import (
    BODY_BUFFER_LIMIT,
    CUT_SHORT,
    HEAD_LIMIT,
    HEAD_TOO_LARGE,
    WAIT,
    WAIT_FOR_CONTINUE,
    WHOLE,
    request_state,
)

_RECV_SIZE = 64 * 1024
# Seconds a request may take to arrive whole from its first byte; then 408 and the connection is closed.
REQUEST_TIMEOUT = int(os.environ.get("GUNICORN_REQUEST_TIMEOUT") or 15)
# How long the main thread may be in one request before the stand-in accepts connections,
# how often the stand-in looks, and how long it waits for a request head it accepted.
STAND_IN_AFTER = 0.25
STAND_IN_EVERY = 0.1
STAND_IN_READ = 0.5
# What the stand-in answers itself: the liveness probe, which needs nothing the stuck request holds.
_LIVENESS_REQUEST_LINES = (b"GET /healthz ", b"HEAD /healthz ")


class ConnectionShares:
    """How many connections each worker holds, in memory shared by every worker.

    Made in gunicorn's master when it loads the worker class, so every worker
    forked from it shares it. A worker has the slot of its ``age`` (gunicorn's
    spawn counter) modulo ``SLOTS`` and alone writes it; the master clears it
    when the worker exits. A read is a sum of counts each written whole, with
    no lock: a count a moment old only shifts a limit by one for a moment.
    """

    SLOTS = 128  # more than any machine's workers; a sum of them costs under a microsecond

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self.SLOTS * 8)
        self._counts = memoryview(self._memory).cast("q")

    def clear(self, age: int) -> None:
        self._counts[age % self.SLOTS] = 0

    def accept_limit(self, age: int, connections: int, workers: int) -> int:
        """Publish this worker's ``connections``; how many it may hold before it stops accepting:
        its share of all the workers' connections, plus one. The worker holding the fewest is
        always under it, so some worker always accepts."""
        self._counts[age % self.SLOTS] = connections
        return -(-sum(self._counts) // max(workers, 1)) + 1


connection_shares = ConnectionShares()
# How soon a worker that stopped accepting at its share looks again.
SHARE_RECHECK_SECONDS = 0.01


class _BufferedConn(TConn):  # type: ignore[misc]
    """A connection and the bytes of its next request received so far."""

    def __init__(self, worker: BufferingThreadWorker, *args: Any) -> None:
        super().__init__(*args)
        self.worker = worker
        self.received = bytearray()
        self.started = False  # a byte of the next request has come: REQUEST_TIMEOUT runs
        self.deadline = time.monotonic() + worker.cfg.keepalive
        self.reading = False  # in the poller, waiting for the rest of a request
        self.cut_short = False  # handed on before its body was whole: close after the answer
        self.continue_sent = False

    def close(self, graceful: bool = False) -> None:
        """gthread lingers on a closing socket for the client's FIN, blocking its main loop for
        up to two seconds; here the lingering is left to the poller."""
        if graceful:
            self.worker.linger(self.sock)
        else:
            gunicorn_util.close(self.sock)


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker; a request is run only once it has arrived whole."""

    LINGER_SECONDS = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_conns: dict[_BufferedConn, None] = {}
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
            threading.Thread(target=self.stand_in, name="liveness-stand-in", daemon=True).start()
        super().run()

    def stand_in(self) -> None:
        """While the main thread is stuck in a request, accept for it: answer liveness probes, hand on the rest."""
        while self.alive:
            time.sleep(STAND_IN_EVERY)
            since = self.busy_since
            if since is None or time.monotonic() - since < STAND_IN_AFTER:
                continue
            with contextlib.suppress(OSError, ValueError):
                for listener in select.select(self.sockets, [], [], 0)[0]:
                    try:
                        sock, address = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    self.answer_or_hand_on(sock, address, listener)

    def answer_or_hand_on(self, sock: socket.socket, address: Any, listener: Any) -> None:
        """On the stand-in thread: a liveness probe is answered here and closed; whatever
        else the connection brings goes to the main loop with the bytes read so far."""
        conn = _BufferedConn(self, self.cfg, sock, address, listener.getsockname())
        sock.settimeout(STAND_IN_READ)
        deadline = time.monotonic() + STAND_IN_READ
        state = WAIT
        with contextlib.suppress(OSError):
            while state == WAIT and time.monotonic() < deadline:
                data = sock.recv(_RECV_SIZE)
                if not data:
                    break
                conn.received += data
                state = request_state(conn.received, self.cfg.limit_request_line)
        if state == WHOLE and is_liveness_probe(conn.received):
            sock.settimeout(None)
            make_ready(conn)
            conn.cut_short = True  # not kept alive: closed here once answered
            self.handle(conn)
            gunicorn_util.close(sock)
            return
        # Anything else (another request, one not yet whole, one to refuse) is the loop's, as if it had accepted it.
        self.method_queue.defer(self.adopt, conn)

    def adopt(self, conn: _BufferedConn) -> None:
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
        self.enqueue_req(_BufferedConn(self, self.cfg, client_sock, client_addr, listener.getsockname()))

    def enqueue_req(self, conn: TConn) -> None:
        """Called (on the main thread) for a new connection, a kept-alive one that turned readable,
        and one whose last read took in part of its next request: read on, hand it on when whole."""
        if (
            not isinstance(conn, _BufferedConn)
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

    def receive(self, conn: _BufferedConn) -> None:
        ended = False  # the client sent all it will (closed, or half-closed after its request)
        try:
            while len(conn.received) <= HEAD_LIMIT + BODY_BUFFER_LIMIT:
                data = conn.sock.recv(_RECV_SIZE)
                if not data:
                    ended = True
                    break
                conn.received += data
                if len(data) < _RECV_SIZE:
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

    def on_request_readable(self, conn: _BufferedConn, _sock: socket.socket) -> None:
        self.receive(conn)

    def stop_reading(self, conn: _BufferedConn) -> None:
        if conn.reading:
            conn.reading = False
            del self.reading_conns[conn]
            self.poller.unregister(conn.sock)

    def drop(self, conn: _BufferedConn, graceful: bool = False) -> None:
        """Close a connection that is reading a request (``graceful``: after an answer)."""
        self.stop_reading(conn)
        self.nr_conns -= 1
        conn.close(graceful)

    def send_quietly(self, conn: _BufferedConn, data: bytes) -> None:
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
            if sock.recv(_RECV_SIZE):
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


def is_liveness_probe(received: bytearray) -> bool:
    """Whether the request in ``received`` is ``GET`` or ``HEAD /healthz``."""
    return received.startswith(_LIVENESS_REQUEST_LINES)


def make_ready(conn: _BufferedConn) -> None:
    """Give the request ``conn`` received whole to its parser, for a thread to run."""
    conn.init()  # without TLS or HTTP/2 (see enqueue_req) this only makes the parser
    conn.parser.unreader.unread(bytes(conn.received))
    conn.received.clear()
    conn.data_ready = True


def repeated_headers(headers: list[tuple[str, str]]) -> frozenset[str]:
    """The (upper-case) names that ``headers``, a request's as gunicorn parsed them, hold twice or more."""
    names = [name for name, _value in headers]
    if len(set(names)) == len(names):
        return frozenset()
    counts = Counter(names)
    return frozenset(name for name, count in counts.items() if count > 1)


_REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
