"""gunicorn settings, every one from the environment with a sane default.

gunicorn reads this file from the working directory; options given on the
command line (``-w``, ``-b``) win over it. Access logging is off: the service
writes one JSON line per request itself (``service/observability.py``).

It also prepares Prometheus's multiprocess mode: every worker keeps its
samples in files under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums
them. The folder is made (or emptied) before the first worker starts.

Workers are ``BufferingThreadWorker`` (``service/serving/worker.py``): gunicorn's ``gthread`` worker,
except that a request is run only once it has arrived whole. Slow or stalled
clients (headers or a body trickling in, connections that send nothing,
kept-alive connections left idle) wait in the worker's poller and hold no
thread, so they cannot keep the service from anyone else.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def _int(name: str, default: int, *aliases: str) -> int:
    for variable in (name, *aliases):
        raw = os.environ.get(variable, "").strip()
        if raw:
            return int(raw)
    return default


# Where to listen. HOST defaults to loopback; the container image sets 0.0.0.0.
bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '127.0.0.1')}:{_int('PORT', 8000)}"

# Worker processes: 2 * cores + 1 unless told (WEB_CONCURRENCY is the common name).
# os.cpu_count(), not multiprocessing's: every worker is forked from this process
# and would carry the multiprocessing package it never uses.
workers = _int("GUNICORN_WORKERS", (os.cpu_count() or 1) * 2 + 1, "WEB_CONCURRENCY")
# Threads per worker that run requests once they have arrived whole (waiting on clients takes none);
# with one, the worker's main thread runs them.
threads = _int("GUNICORN_THREADS", 1)
# Connections one worker holds at once (waiting, kept alive or being served); past it, it stops accepting.
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 1000)

# A worker silent for this long is killed and replaced; requests finish within graceful_timeout on shutdown.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Seconds an idle connection (kept alive, or new and silent) is kept open.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# GUNICORN_REQUEST_TIMEOUT (15): seconds a request may take to arrive whole from its first byte;
# then 408 and the connection is closed (read by service/serving/worker.py).
# Replace workers now and then (0: never), with jitter so they do not all restart at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", max_requests // 10)

# What gunicorn refuses itself, before the app sees the request (HTML bodies, ``Connection: close``):
# a request line over limit_request_line bytes is a 414; over limit_request_fields header fields, or
# one over limit_request_field_size bytes, is a 431; a malformed request is a 400. The request line can
# be long (a listing's query string); 8190 is gunicorn's largest. The head as a whole (request line
# and headers) may take at most 64 KiB: BufferingThreadWorker answers 431 past it.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Forwarding headers (X-Forwarded-Proto and the like, and SCRIPT_NAME, which would change routing)
# count only from these addresses, comma-separated IPs or networks: the proxies in front. None by
# default, loopback included: a header a client sends never changes what the service sees.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")

# The app is created once, in the master, and every worker is forked from it:
# the workers share its modules and objects instead of each building a copy
# of its own, and a replaced worker starts at once. create_app() opens no
# connection (the database pool and the Redis client connect on first use), so
# none crosses a fork; post_fork() still hands each worker an empty pool. New
# code needs a restart of the master: a HUP restarts the workers on the code
# already loaded.
preload_app = True
accesslog = None
errorlog = "-"
# No control socket: its default path is one per user, shared by every master on the machine.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Heartbeat files in memory, not on a container's overlay disk (gunicorn makes them with mkstemp).
_SHARED_MEMORY = "/dev/shm"  # noqa: S108
if Path(_SHARED_MEMORY).is_dir() and os.access(_SHARED_MEMORY, os.W_OK):
    worker_tmp_dir = _SHARED_MEMORY

# No log line the server writes names the file and line it was logged from
# (the service's JSON lines do not, nor does gunicorn's format): skip the
# stack walk that finds them, most of what a log call costs (the logging
# HOWTO's "Optimization" section). Records keep process and thread ids.
logging._srcfile = None

_METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_metrics_dir_made_here = not os.environ.get(_METRICS_DIR_VARIABLE)
if _metrics_dir_made_here:
    # Set before any worker imports prometheus_client, which reads it on import.
    os.environ[_METRICS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="user-sessions-metrics-")


# Slow clients wait in the worker's poller, not in a thread (service/serving/worker.py).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "service.serving.worker.BufferingThreadWorker"


def on_starting(_server: Any) -> None:
    """Start from empty metrics: samples of an earlier run must not be summed in."""
    path = Path(os.environ[_METRICS_DIR_VARIABLE])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def pre_fork(_server: Any, _worker: Any) -> None:
    """Hide what the master built from the garbage collector before forking: a
    worker's collections would otherwise write to every object they visit, and
    so copy the memory pages the worker shares with the master."""
    gc.freeze()


def post_fork(server: Any, _worker: Any) -> None:
    """A new worker drops any pooled connection the master might hold (SQLAlchemy's
    advice for a forked process): it must never share a socket with its siblings."""
    if not server.cfg.preload_app:
        return
    from service.extensions import db

    app = server.app.wsgi()  # the app the master loaded
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


def child_exit(_server: Any, worker: Any) -> None:
    """Tell Prometheus a worker is gone (its live gauges stop counting), and free its
    slot among the connection shares (service/serving/shares.py)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    from service.serving.shares import connection_shares

    connection_shares.clear(worker.age)


def on_exit(_server: Any) -> None:
    if _metrics_dir_made_here:
        shutil.rmtree(os.environ[_METRICS_DIR_VARIABLE], ignore_errors=True)
