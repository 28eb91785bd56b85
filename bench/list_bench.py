"""List benchmark: the first page against a page at 90 % depth, in the same run.

    python bench/list_bench.py --database-url postgresql://postgres@127.0.0.1:5432/user_sessions_bench

Makes the database afresh (it must be a scratch database: it is dropped),
migrates it, seeds ``--rows`` sessions, serves the service with gunicorn and
measures ``GET /user-sessions?limit=50`` against the 50 rows from 0.9·N on,
reached the way a client would: ``?limit=1&created_before=T`` gives the
token of the page after the row at 0.9·N - 1, then
``?limit=50&created_before=T&page_token=…``. Keyset paging makes both cost the
same; the ratio deep/first is printed (goal: at least 0.9). Load comes from
``wrk`` when it is on PATH, else from a small threaded Python client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from common import (
    LoadResult,
    Request,
    Server,
    cpu_seconds,
    deep_list_path,
    have_wrk,
    log,
    migrate,
    recreate_database,
    run_python_load,
    run_wrk,
    seed,
    server_environment,
    start_gunicorn,
    worker_pids,
)


def load_page(server: Server, path: str, duration: float, connections: int, python_load: bool) -> LoadResult:
    """Steady load on one page; any answer but 200 stops the benchmark."""
    if have_wrk() and not python_load:
        result = run_wrk(server.port, "path", duration, connections, settings={"BENCH_PATH": path})
    else:
        result = run_python_load(server.port, lambda _rng: Request("GET", path), 200, duration, connections)
    if result.errors:
        raise RuntimeError(
            f"errors under load on {path}: {result.unexpected_status} statuses other than 200, "
            f"{result.socket_errors} socket errors"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/user_sessions_bench"),
        help="a scratch PostgreSQL database: it is dropped and made afresh",
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds a measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python-load", action="store_true", help="use the Python client even if wrk is there")
    args = parser.parse_args()

    database_url = args.database_url
    recreate_database(database_url)
    migrate(database_url)
    seeded = seed(database_url, args.rows)
    log_path = Path(tempfile.mkdtemp(prefix="list-bench-")) / "gunicorn.log"
    server = start_gunicorn(server_environment(database_url), args.workers, log_path)

    def load(path: str, duration: float) -> LoadResult:
        return load_page(server, path, duration, args.connections, args.python_load)

    try:
        paths = {"first": "/user-sessions?limit=50", "deep": deep_list_path(server.port, seeded.deep_before)}
        client = "wrk" if have_wrk() and not args.python_load else "the Python client"
        log(f"load: {client}, {args.connections} connections, {args.workers} gunicorn workers")
        load(paths["first"], 2)  # warm up every worker
        load(paths["deep"], 1)
        server.drain()
        results: dict[str, list[float]] = {"first": [], "deep": []}
        cpu: dict[str, list[float]] = {"first": [], "deep": []}
        for round_number in range(args.rounds):
            order = ("first", "deep") if round_number % 2 == 0 else ("deep", "first")
            for name in order:
                pids = worker_pids(server.pid)
                cpu_before = cpu_seconds(pids)
                result = load(paths[name], args.duration)
                server.drain()
                results[name].append(result.rate)
                cpu[name].append((cpu_seconds(pids) - cpu_before) * 1000 / max(1, result.requests))
            first, deep = results["first"][-1], results["deep"][-1]
            log(
                f"round {round_number + 1}: first {first:.0f} req/s ({cpu['first'][-1]:.1f} ms CPU), "
                f"deep {deep:.0f} req/s ({cpu['deep'][-1]:.1f} ms CPU)"
            )
    finally:
        server.stop()
    first, deep = statistics.median(results["first"]), statistics.median(results["deep"])
    # Paired like the shared harness: each round's deep/first, then the median over the rounds.
    ratios = [d / f for f, d in zip(results["first"], results["deep"], strict=True)]
    print(f"list_first {first:.0f} req/s (median of {args.rounds} rounds)")
    print(f"list_deep  {deep:.0f} req/s (page at 90 % of {args.rows} rows)")
    print(
        f"ratio deep/first {statistics.median(ratios):.2f} (goal >= 0.90; per round: "
        f"{', '.join(f'{ratio:.2f}' for ratio in ratios)})"
    )
    # Wall-clock rates swing with whatever else runs on the machine; the CPU a
    # worker spends on a request does not, and bounds the rate it can serve.
    first_cpu, deep_cpu = statistics.median(cpu["first"]), statistics.median(cpu["deep"])
    print(
        f"worker CPU per request: first {first_cpu:.2f} ms, deep {deep_cpu:.2f} ms; "
        f"ratio first/deep {first_cpu / deep_cpu:.2f} (the rate ratio on a quiet machine)"
    )


if __name__ == "__main__":
    main()
