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
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "list-bench-secret"  # noqa: S105 (a throwaway server's key)
COLUMNS = (
    "uuid",
    "name",
    "email",
    "ip_address",
    "consent_user_data",
    "metadata",
    "is_email_verified",
    "created_at",
    "updated_at",
    "completed_at",
    "deleted_at",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def libpq_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = libpq_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def rows(count: int, now: datetime, rng: random.Random):  # type: ignore[no-untyped-def]
    """Sessions like the agent backend's: created over 90 days, 1 % soft-deleted."""
    for _ in range(count):
        created = now - timedelta(seconds=rng.uniform(60, 90 * 86400))
        updated = min(now, created + timedelta(seconds=rng.uniform(0, 3600)))
        anonymous = rng.random() < 0.25
        email = None if anonymous else f"user{rng.randrange(100_000)}@example.com"
        metadata = {"agent": "maria", "channel": rng.choice(("web", "ios", "android")), "step": rng.randrange(12)}
        yield (
            uuid.UUID(int=rng.getrandbits(128), version=4),
            None if anonymous else "Ana Garcia",
            email,
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            rng.random() < 0.6,
            Jsonb(metadata),
            email is not None and rng.random() < 0.4,
            created,
            updated,
            min(now, updated + timedelta(minutes=5)) if rng.random() < 0.4 else None,
            min(now, updated + timedelta(days=1)) if rng.random() < 0.01 else None,
        )


def seed(database_url: str, count: int) -> datetime:
    """COPY ``count`` rows in, analyse; return the created_at that bounds the deep page's probe."""
    started = time.monotonic()
    with psycopg.connect(libpq_dsn(database_url), autocommit=True) as connection:
        connection.execute("SET timezone = 'UTC'")
        copy_rows = f"COPY user_sessions ({', '.join(COLUMNS)}) FROM STDIN"
        with connection.transaction(), connection.cursor() as cursor, cursor.copy(copy_rows) as copy:
            for row in rows(count, datetime.now(UTC), random.Random(42)):
                copy.write_row(row)
        connection.execute("VACUUM ANALYZE user_sessions")
        live = connection.execute("SELECT count(*) FROM user_sessions WHERE deleted_at IS NULL").fetchone()
        assert live is not None
        deep = int(0.9 * live[0])
        # The row two before the deep page: created_before its created_at
        # lists, first, the row just before the deep page.
        probe = connection.execute(
            "SELECT created_at FROM user_sessions WHERE deleted_at IS NULL "
            "ORDER BY created_at DESC, uuid DESC OFFSET %s LIMIT 1",
            (deep - 2,),
        ).fetchone()
    assert probe is not None
    log(f"seeded {count} rows ({live[0]} live) in {time.monotonic() - started:.1f} s; deep page at row {deep}")
    before: datetime = probe[0]
    return before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_gunicorn(database_url: str, workers: int, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY}
    env.pop("API_KEYS", None)
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "wsgi:app"]
    process = subprocess.Popen(  # noqa: S603
        command, cwd=PROJECT_ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get(port, "/healthz")[0] == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"gunicorn did not answer; see {log_path}")


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def deep_path(port: int, before: datetime) -> str:
    """The deep page, found through the contract as any client would."""
    bound = quote(before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    status, body = get(port, f"/user-sessions?limit=1&created_before={bound}")
    assert status == 200, body
    token = json.loads(body)["next_page_token"]
    path = f"/user-sessions?limit=50&created_before={bound}&page_token={quote(token)}"
    status, body = get(port, path)
    assert status == 200, body
    assert len(json.loads(body)["items"]) == 50
    return path


def load_with_wrk(port: int, path: str, duration: int, connections: int) -> tuple[float, int]:
    output = subprocess.run(  # noqa: S603
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"http://127.0.0.1:{port}{path}"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"errors under load:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    assert rate is not None, output
    assert total is not None, output
    return float(rate.group(1)), int(total.group(1))


def load_with_python(port: int, path: str, duration: int, connections: int) -> tuple[float, int]:
    """``connections`` threads, each sending requests one after another (reconnecting when told to)."""
    done = [0] * connections
    failures = [0] * connections
    deadline = time.monotonic() + duration

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            done[index] += 1
            failures[index] += response.status != 200
            if response.will_close:
                connection.close()
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if sum(failures):
        raise RuntimeError(f"{sum(failures)} responses were not 200")
    return sum(done) / (time.monotonic() - started), sum(done)


def workers_cpu_seconds(master: int) -> float:
    """User + system CPU the master's worker processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:  # the parent pid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/user_sessions_bench"
        ),
        help="a scratch PostgreSQL database: it is dropped and made afresh",
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds a measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python-load", action="store_true", help="use the Python client even if wrk is there")
    args = parser.parse_args()

    database_url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    recreate_database(database_url)
    migrate(database_url)
    before = seed(database_url, args.rows)
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"list_bench_gunicorn_{port}.log"
    server = start_gunicorn(database_url, args.workers, port, log_path)
    load = load_with_python if args.python_load or shutil.which("wrk") is None else load_with_wrk
    try:
        paths = {"first": "/user-sessions?limit=50", "deep": deep_path(port, before)}
        log(f"load: {load.__name__}, {args.connections} connections, {args.workers} gunicorn workers")
        load(port, paths["first"], 2, args.connections)  # warm up every worker
        load(port, paths["deep"], 1, args.connections)
        results: dict[str, list[float]] = {"first": [], "deep": []}
        cpu: dict[str, list[float]] = {"first": [], "deep": []}
        for round_number in range(args.rounds):
            order = ("first", "deep") if round_number % 2 == 0 else ("deep", "first")
            for name in order:
                cpu_before = workers_cpu_seconds(server.pid)
                rate, requests = load(port, paths[name], args.duration, args.connections)
                results[name].append(rate)
                cpu[name].append((workers_cpu_seconds(server.pid) - cpu_before) * 1000 / requests)
            first, deep = results["first"][-1], results["deep"][-1]
            log(
                f"round {round_number + 1}: first {first:.0f} req/s ({cpu['first'][-1]:.1f} ms CPU), "
                f"deep {deep:.0f} req/s ({cpu['deep'][-1]:.1f} ms CPU)"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
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
