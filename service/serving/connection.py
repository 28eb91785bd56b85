"""A connection the worker reads a request on, and what it can tell of that request."""

from __future__ import annotations

import time
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.workers.gthread import TConn

RECV_SIZE = 64 * 1024
# What the stand-in answers itself: the liveness probe, which needs nothing a stuck request holds.
_LIVENESS_REQUEST_LINES = (b"GET /healthz ", b"HEAD /healthz ")


class BufferedConn(TConn):  # type: ignore[misc]
    """A connection and the bytes of its next request received so far."""

    def __init__(self, worker: Any, *args: Any) -> None:
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


def is_liveness_probe(received: bytearray) -> bool:
    """Whether the request in ``received`` is ``GET`` or ``HEAD /healthz``."""
    return received.startswith(_LIVENESS_REQUEST_LINES)


def make_ready(conn: BufferedConn) -> None:
    """Give the request ``conn`` received whole to its parser, for a thread to run."""
    conn.init()  # without TLS or HTTP/2 (see the worker's enqueue_req) this only makes the parser
    conn.parser.unreader.unread(bytes(conn.received))
    conn.received.clear()
    conn.data_ready = True
