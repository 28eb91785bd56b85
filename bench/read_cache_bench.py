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
import tempfile
import time
from pathlib import Path

from common import cpu_seconds, migrate, percentile, recreate_database, server_environment, start_gunicorn, worker_pids


def worker_cpu_seconds(master_pid: int) -> float:
    workers = worker_pids(master_pid)
    assert len(workers) == 1, f"expected one worker, found {workers}"
    return cpu_seconds(workers)


def request(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return data


def run(environ: dict[str, str], sessions: int, requests: int, log: Path) -> dict[str, float]:
    server = start_gunicorn(environ, 1, log)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
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
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "hits": hits,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a scratch PostgreSQL database: it is dropped")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    recreate_database(args.database_url)
    base = server_environment(args.database_url)
    migrate(args.database_url)
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
