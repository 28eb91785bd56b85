"""A real gunicorn serving the service, for tests of races and processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from service import create_app
from service.extensions import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def migrate(database_url: str) -> None:
    """Bring ``database_url`` to the current schema, as ``flask db upgrade`` would."""
    from flask_migrate import upgrade

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "live-test-secret"})
    with app.app_context():
        upgrade()
        db.engine.dispose()


@dataclass
class LiveServer:
    """One gunicorn process group; ``url(path)`` addresses it."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    environ: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gunicorn(
    database_url: str,
    log_path: Path,
    *,
    workers: int = 3,
    environ: Mapping[str, str] | None = None,
    port: int | None = None,
) -> LiveServer:
    """Start ``gunicorn wsgi:app`` on a free port and wait until it answers."""
    port = port or free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "live-test-secret",
        **(environ or {}),
    }
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "wsgi:app"]
    log_file = log_path.open("ab")
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, dict(env))
    try:
        wait_until_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_healthy(server: LiveServer, timeout: float = 30) -> None:
    """Poll ``/healthz`` until it answers 200; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url("/healthz"), timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{server.log()}")


def race(count: int, request: Callable[[], requests.Response]) -> list[requests.Response]:
    """Fire ``count`` requests at once (threads released by one barrier)."""
    barrier = threading.Barrier(count)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        response = request()
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return responses
