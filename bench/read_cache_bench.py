"""Read-cache benchmark: what one ``GET /user-sessions/{uuid}`` costs the
worker that answers it, without the cache and with every read a hit.

    python bench/read_cache_bench.py --database-url postgresql://postgres@127.0.0.1:5432/user_sessions_cache_bench \\
        --redis-url redis://127.0.0.1:6379/0

Makes the database afresh (it must be a scratch database: it is dropped),
migrates it, and serves the service with one gunicorn worker, first without
``REDIS_URL``, then with it. Each run creates ``--sessions`` sessions, reads
each once (the cache run fills the cache), then reads them round-robin
``--requests`` times from one keep-alive client. It prints the worker's CPU
time per request (user + system, from ``/proc``), and the client's median and
99th-percentile latency. Both runs log as in production (one JSON line per
request, to a file).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "read-cache-bench-secret"  # noqa: S105 (a throwaway server's key)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def recreate_database(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{parsed.database}"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def worker_cpu_seconds(master_pid: int) -> float:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    assert len(children) == 1, f"expected one worker, found {children}"
    fields = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def request(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return data


def run(environ: dict[str, str], sessions: int, requests: int, log: Path) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"]
    with log.open("ab") as log_file:
        server = subprocess.Popen(  # noqa: S603
            command, cwd=PROJECT_ROOT, env=environ, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                request(connection, "GET", "/healthz")
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                connection.close()
                time.sleep(0.1)
        body = json.dumps({"name": "bench", "email": "bench@example.org", "metadata": {"step": 1, "tags": ["a"]}})
        paths = [
            f"/user-sessions/{json.loads(request(connection, 'POST', '/user-sessions', body.encode()))['uuid']}"
            for _ in range(sessions)
        ]
        for path in paths:
            request(connection, "GET", path)
        latencies: list[float] = []
        cpu_before = worker_cpu_seconds(server.pid)
        for index in range(requests):
            started = time.perf_counter()
            request(connection, "GET", paths[index % len(paths)])
            latencies.append(time.perf_counter() - started)
        cpu = worker_cpu_seconds(server.pid) - cpu_before
        metrics = request(connection, "GET", "/metrics").decode()
        hits = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith('cache_requests_total{result="hit"}')
        )
        latencies.sort()
        return {
            "cpu_ms": cpu * 1000 / requests,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "hits": hits,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a scratch PostgreSQL database: it is dropped")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    recreate_database(args.database_url)
    base = {**os.environ, "DATABASE_URL": args.database_url, "SECRET_KEY": SECRET_KEY}
    base.pop("REDIS_URL", None)
    upgrade = [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]
    subprocess.run(upgrade, cwd=PROJECT_ROOT, env=base, check=True, capture_output=True)  # noqa: S603
    log = Path(tempfile.mkdtemp(prefix="read-cache-bench-")) / "gunicorn.log"
    print(f"{'mode':<10}{'CPU ms/request':>16}{'p50 ms':>10}{'p99 ms':>10}{'cache hits':>12}")
    for mode, environ in (("database", base), ("cache", {**base, "REDIS_URL": args.redis_url})):
        result = run(environ, args.sessions, args.requests, log)
        print(
            f"{mode:<10}{result['cpu_ms']:>16.3f}{result['p50_ms']:>10.3f}{result['p99_ms']:>10.3f}"
            f"{result['hits']:>12.0f}"
        )


if __name__ == "__main__":
    main()
