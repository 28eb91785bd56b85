"""What the benchmarks share: a scratch PostgreSQL database seeded like
production, the service served from it by gunicorn, load from ``wrk`` (or a
small threaded Python client when wrk is missing), percentiles, and what
``/proc`` says about gunicorn's workers.

Nothing here depends on anything outside this repository.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "scenario.lua"
SECRET_KEY = "bench-secret"  # noqa: S105 (a throwaway server's key)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The seeded columns; the rest (version, expires_at, …) keep their defaults.
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
# Settings of the caller's shell that would change what is measured.
_FOREIGN_SETTINGS = ("REDIS_URL", "API_KEYS", "RATE_LIMIT", "ENV", "PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the database ------------------------------------------------------------


def sqlalchemy_url(database_url: str) -> str:
    """``postgresql://…`` as the service takes it (psycopg 3)."""
    return make_url(database_url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate_database(database_url: str) -> None:
    """Drop and create the database (it must be a scratch one)."""
    url = make_url(database_url)
    admin = libpq_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')


def migrate(database_url: str) -> None:
    """``flask --app wsgi db upgrade``, from the project root, as an operator would run it."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=server_environment(database_url),
        check=True,
        capture_output=True,
    )


def session_rows(count: int, now: datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
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


@dataclass(frozen=True)
class Seeded:
    rows: int
    live: int
    deep_row: int
    # The created_at of the live row two before the deep page (see deep_list_path).
    deep_before: datetime


def seed(database_url: str, count: int) -> Seeded:
    """COPY ``count`` sessions in, ``VACUUM ANALYZE``, and find the bound that leads to the deep page."""
    started = time.monotonic()
    with psycopg.connect(libpq_dsn(database_url), autocommit=True) as connection:
        connection.execute("SET timezone = 'UTC'")
        copy_rows = f"COPY user_sessions ({', '.join(COLUMNS)}) FROM STDIN"
        with connection.transaction(), connection.cursor() as cursor, cursor.copy(copy_rows) as copy:
            for row in session_rows(count, datetime.now(UTC), random.Random(42)):
                copy.write_row(row)
        connection.execute("VACUUM ANALYZE user_sessions")
        live_row = connection.execute("SELECT count(*) FROM user_sessions WHERE deleted_at IS NULL").fetchone()
        assert live_row is not None
        live: int = live_row[0]
        deep = int(0.9 * live)
        # The row two before the deep page: created_before its created_at
        # lists, first, the row just before the deep page.
        probe = connection.execute(
            "SELECT created_at FROM user_sessions WHERE deleted_at IS NULL "
            "ORDER BY created_at DESC, uuid DESC OFFSET %s LIMIT 1",
            (deep - 2,),
        ).fetchone()
    assert probe is not None
    log(f"seeded {count} rows ({live} live) in {time.monotonic() - started:.1f} s; deep page at row {deep}")
    return Seeded(rows=count, live=live, deep_row=deep, deep_before=probe[0])


def write_live_uuids(database_url: str, path: Path) -> int:
    """Every live uuid, one a line, shuffled (the first thousand make a hot set of random rows)."""
    with psycopg.connect(libpq_dsn(database_url)) as connection:
        uuids = [str(row[0]) for row in connection.execute("SELECT uuid FROM user_sessions WHERE deleted_at IS NULL")]
    random.Random(7).shuffle(uuids)
    path.write_text("\n".join(uuids) + "\n")
    return len(uuids)


def postgres_version(database_url: str) -> str:
    with psycopg.connect(libpq_dsn(database_url)) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0]).split()[0]


# --- the server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(database_url: str, **settings: str) -> dict[str, str]:
    """The caller's environment without anything that would change what is measured, plus ``settings``."""
    environ = {key: value for key, value in os.environ.items() if key not in _FOREIGN_SETTINGS}
    return {**environ, "DATABASE_URL": sqlalchemy_url(database_url), "SECRET_KEY": SECRET_KEY, **settings}


@dataclass
class Server:
    """``gunicorn -w N wsgi:app`` from the project root (our gunicorn.conf.py read as usual)."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def drain(self) -> None:
        """Wait out the requests still queued when the load stopped: a sync worker
        serves them although their client is gone, and the accept queue is FIFO."""
        request(self.port, "GET", "/healthz", timeout=60)


def start_gunicorn(environ: Mapping[str, str], workers: int, log_path: Path, ready_timeout: float = 30) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "wsgi:app"]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(  # noqa: S603
            command, cwd=PROJECT_ROOT, env=dict(environ), stdout=log_file, stderr=subprocess.STDOUT
        )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if request(port, "GET", "/healthz", timeout=2)[0] == 200:
                return server
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer; see {log_path}")


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def deep_list_path(port: int, before: datetime, limit: int = 50) -> str:
    """The page at 90 % depth, found through the contract as any client would:
    ``?limit=1&created_before=T`` lists the row just before it and gives the token
    of the page after; a token is bound to its filters, so the bound goes along."""
    bound = quote(before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    status, body = request(port, "GET", f"/user-sessions?limit=1&created_before={bound}")
    assert status == 200, body
    token = json.loads(body)["next_page_token"]
    path = f"/user-sessions?limit={limit}&created_before={bound}&page_token={quote(token)}"
    status, body = request(port, "GET", path)
    assert status == 200, body
    assert len(json.loads(body)["items"]) == limit
    return path


# --- load -----------------------------------------------------------------------


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (``fraction`` 0.5 is the median)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    unexpected_status: int
    # Connections refused or broken, and requests that timed out.
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.unexpected_status + self.socket_errors


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    port: int,
    scenario: str,
    duration: float,
    connections: int,
    threads: int = 1,
    timeout: int = 10,
    settings: Mapping[str, str] | None = None,
) -> LoadResult:
    """One ``wrk`` run of ``bench/wrk/scenario.lua`` (``BENCH_SCENARIO`` picks the request shape)."""
    # A fresh seed each run: a run must not replay the requests of the one before (a warm cache).
    seed = str(random.SystemRandom().randrange(2**31))
    environ = {**os.environ, "BENCH_SCENARIO": scenario, "BENCH_SEED": seed, **(settings or {})}
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout}s",
        "-s",
        str(WRK_SCRIPT),
        f"http://127.0.0.1:{port}",
    ]
    completed = subprocess.run(  # noqa: S603
        command, env=environ, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    line = next((line for line in completed.stdout.splitlines() if line.startswith("BENCHJSON ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout[-500:]} {completed.stderr[-500:]}")
    result = json.loads(line.removeprefix("BENCHJSON "))
    return LoadResult(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        unexpected_status=result["unexpected_status"],
        socket_errors=sum(result[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts")),
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] | None = None


def run_python_load(
    port: int,
    make_request: Callable[[random.Random], Request],
    expected_status: int,
    duration: float,
    connections: int,
    timeout: float = 10,
) -> LoadResult:
    """``connections`` threads, each sending requests one after another (reconnecting when told to)."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    unexpected = [0] * connections
    broken = [0] * connections
    deadline = time.monotonic() + duration

    def client(index: int) -> None:
        rng = random.Random()  # seeded from the OS: no run replays the one before
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        while time.monotonic() < deadline:
            shape = make_request(rng)
            started = time.perf_counter()
            try:
                connection.request(shape.method, shape.path, body=shape.body, headers=dict(shape.headers or {}))
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                broken[index] += 1
                connection.close()
                continue
            latencies[index].append((time.perf_counter() - started) * 1000)
            unexpected[index] += response.status != expected_status
            if response.will_close:
                connection.close()
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latency for per_thread in latencies for latency in per_thread)
    return LoadResult(
        requests=len(ordered),
        seconds=elapsed,
        p50_ms=percentile(ordered, 0.5),
        p99_ms=percentile(ordered, 0.99),
        unexpected_status=sum(unexpected),
        socket_errors=sum(broken),
    )


# --- what /proc says about the workers ------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces; everything after its ")" splits cleanly.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def worker_pids(master: int) -> list[int]:
    """The processes whose parent is gunicorn's master (Linux ``/proc``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == master:
            pids.append(int(entry.name))
    return sorted(pids)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU these processes have used so far."""
    total = 0.0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of one process (``VmRSS``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
