"""Liveness probes answered while a request holds a one-thread worker.

With one thread, a worker runs each request on its main loop; a request
waiting on a database that stopped answering holds the loop, and a probe of
``/healthz`` (no I/O) would queue behind it until the platform restarts a
worker that is alive. So a stand-in thread watches: once the main thread has
been in one request for STAND_IN_AFTER seconds, it accepts new connections
itself, answers liveness probes on them through the app, and hands any other
request (with what it read of it) to the loop, which serves it when free.
Kept-alive connections stay with the loop.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from typing import Any

from gunicorn import util as gunicorn_util

from service.serving.connection import RECV_SIZE, BufferedConn, is_liveness_probe, make_ready
from service.serving.framing import WAIT, WHOLE, request_state

# How long the main thread may be in one request before the stand-in accepts connections,
# how often the stand-in looks, and how long it waits for a request head it accepted.
STAND_IN_AFTER = 0.25
STAND_IN_EVERY = 0.1
STAND_IN_READ = 0.5


class LivenessStandIn:
    """The stand-in thread of one worker (gunicorn's ``ThreadWorker`` with the
    buffering worker's ``busy_since`` and ``adopt``)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def start(self) -> None:
        threading.Thread(target=self.watch, name="liveness-stand-in", daemon=True).start()

    def watch(self) -> None:
        """While the main thread is stuck in a request, accept for it."""
        worker = self.worker
        while worker.alive:
            time.sleep(STAND_IN_EVERY)
            since = worker.busy_since
            if since is None or time.monotonic() - since < STAND_IN_AFTER:
                continue
            with contextlib.suppress(OSError, ValueError):
                for listener in select.select(worker.sockets, [], [], 0)[0]:
                    try:
                        sock, address = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    self.answer_or_hand_on(sock, address, listener)

    def answer_or_hand_on(self, sock: socket.socket, address: Any, listener: Any) -> None:
        """A liveness probe is answered here and closed; whatever else the connection
        brings goes to the main loop with the bytes read so far."""
        worker = self.worker
        conn = BufferedConn(worker, worker.cfg, sock, address, listener.getsockname())
        sock.settimeout(STAND_IN_READ)
        deadline = time.monotonic() + STAND_IN_READ
        state = WAIT
        with contextlib.suppress(OSError):
            while state == WAIT and time.monotonic() < deadline:
                data = sock.recv(RECV_SIZE)
                if not data:
                    break
                conn.received += data
                state = request_state(conn.received, worker.cfg.limit_request_line)
        if state == WHOLE and is_liveness_probe(conn.received):
            sock.settimeout(None)
            make_ready(conn)
            conn.cut_short = True  # not kept alive: closed here once answered
            worker.handle(conn)
            gunicorn_util.close(sock)
            return
        # Anything else (another request, one not yet whole, one to refuse) is the loop's, as if it had accepted it.
        worker.method_queue.defer(worker.adopt, conn)
