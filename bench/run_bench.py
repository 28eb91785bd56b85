"""The project's own benchmark: every request shape, with and without Redis.

    python bench/run_bench.py --database-url postgresql://postgres@127.0.0.1:5432/user_sessions_bench \\
        --redis-url redis://127.0.0.1:6379/15

Makes the database afresh (it must be a scratch database: it is dropped),
migrates it (``flask --app wsgi db upgrade``), COPYs ``--rows`` sessions in
and ``VACUUM ANALYZE``s. Then it serves the service twice from that database
with ``gunicorn -w --workers wsgi:app`` (our gunicorn.conf.py read as usual):
``project`` without ``REDIS_URL``, ``project_redis`` with it (the service's
keys in that Redis database are deleted first).

Scenarios (``bench/wrk/scenario.lua``): ``get`` a random live session,
``get_hot`` one of 1,000, ``post`` a new one, ``patch`` a random one (merge
patch of name and email), ``list_first`` (``?limit=50``) and ``list_deep``
(the page at 90 % depth, reached through the contract). Round after round,
each scenario runs ``--duration`` seconds against each target in turn, so that
whatever else the machine does falls on both alike; the table shows the median
over the rounds. A status other than the expected one is an error, as are
socket errors and timeouts. Rows the POSTs made are deleted after each run.

It prints req/s, p50, p99, errors and the workers' CPU per request of each
scenario and target, the ratio list_deep/list_first, each worker's resident
memory after the run, and the machine it ran on. ``--json FILE`` keeps it all.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import redis
from common import (
    LoadResult,
    Request,
    Server,
    cpu_seconds,
    deep_list_path,
    have_wrk,
    libpq_dsn,
    log,
    migrate,
    percentile,
    postgres_version,
    recreate_database,
    request,
    rss_mib,
    run_python_load,
    run_wrk,
    seed,
    server_environment,
    start_gunicorn,
    worker_pids,
    write_live_uuids,
)

SCENARIOS = (
    "get",
    "get_hot",
    "post",
    "patch",
    "list_first",
    "list_deep",
    "item_append",
    "item_append_20",
    "items_newest_20",
    "items_newest_100k",
    "items_deep_20",
    "items_deep_100k",
)
EXPECTED_STATUS = {
    "get": 200,
    "get_hot": 200,
    "post": 201,
    "patch": 200,
    "list_first": 200,
    "list_deep": 200,
    "item_append": 201,
    "item_append_20": 201,
    "items_newest_20": 200,
    "items_newest_100k": 200,
    "items_deep_20": 200,
    "items_deep_100k": 200,
}
# Items appended per request by the append scenarios.
APPEND_BATCH = {"item_append": 1, "item_append_20": 20}
# The two histories the items reads run on: a short one and a long one.
HISTORIES = {"20": 20, "100k": 100_000}
# The items reads: the newest page, and a page reached by a token at 90 % of the history.
NEWEST_LIMIT = 20
# A 20-item history holds 2 items past its 90 %: the deep page of either history has that many.
DEEP_LIMIT = 2
# Pairs whose costs the issue bounds: (scenario, the one it is compared with, the bound on its cost ratio).
COST_BOUNDS = (
    ("item_append", "post", 1.25),
    ("item_append_20", "item_append", 2.0),
    ("items_newest_100k", "items_newest_20", 1.1),
    ("items_deep_100k", "items_deep_20", 1.1),
)
FIRST_PAGE = "/user-sessions?limit=50"
# POSTs mark what they make, so it can be deleted after each run (seeded rows have no such key).
POSTED_MARK = '{"source": "bench-post"}'
CACHE_KEY_PATTERN = "user-sessions:*"


@dataclass
class Target:
    name: str
    server: Server
    deep_path: str = ""
    # The path each items read requests (the same on every target: one database).
    item_paths: dict[str, str] = field(default_factory=dict)
    runs: dict[str, list[LoadResult]] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    # Of the reads that asked the cache during a run, the share it answered (targets with Redis).
    hit_pct: dict[str, list[float]] = field(default_factory=dict)
    cached: bool = False


def machine(database_url: str, redis_url: str) -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    info: dict[str, Any] = redis.Redis.from_url(redis_url).info("server")  # type: ignore[assignment]
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres_version(database_url),
        "redis": info["redis_version"],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def forget_cache(redis_url: str) -> int:
    """Delete the service's keys (entries, fences) an earlier run left in this Redis database."""
    client = redis.Redis.from_url(redis_url)
    removed = 0
    for key in client.scan_iter(match=CACHE_KEY_PATTERN, count=1000):
        removed += int(client.delete(key))  # type: ignore[arg-type]
    return removed


def delete_posted(database_url: str) -> int:
    with psycopg.connect(libpq_dsn(database_url), autocommit=True) as connection:
        return connection.execute("DELETE FROM user_sessions WHERE metadata @> %s::jsonb", (POSTED_MARK,)).rowcount


def seed_items(database_url: str, uuids: list[str]) -> dict[str, str]:
    """Give two live sessions (the last two of ``uuids``, out of get_hot's set) histories
    of 20 and 100,000 items, as an agent SDK stores them; return their uuids by name."""
    started = time.monotonic()
    sessions = {name: uuids[-1 - index] for index, name in enumerate(HISTORIES)}
    with psycopg.connect(libpq_dsn(database_url), autocommit=True) as connection:
        for name, count in HISTORIES.items():
            connection.execute(
                "INSERT INTO conversation_items (user_session_uuid, seq, id, type, role, content, created_at) "
                "SELECT %(uuid)s, i, gen_random_uuid(), 'message', "
                "CASE WHEN i %% 2 = 0 THEN 'assistant' ELSE 'user' END, "
                "jsonb_build_object('role', CASE WHEN i %% 2 = 0 THEN 'assistant' ELSE 'user' END, "
                "'content', 'Turn ' || i || ' of a conversation with Maria about the weather.'), now() "
                "FROM generate_series(1, %(count)s) AS i",
                {"uuid": sessions[name], "count": count},
            )
            connection.execute(
                "UPDATE user_sessions SET last_item_seq = %(count)s WHERE uuid = %(uuid)s",
                {"uuid": sessions[name], "count": count},
            )
        connection.execute("VACUUM ANALYZE conversation_items")
    log(f"seeded histories of {', '.join(HISTORIES)} items in {time.monotonic() - started:.1f} s")
    return sessions


def item_paths(port: int, sessions: dict[str, str]) -> dict[str, str]:
    """The path of each items read. The deep page is found through the contract,
    as a client would: pages of 500 (of 18 for the short history) oldest first,
    up to the one that ends at 90 % of the history; its token, with a smaller
    ``limit`` (which may change between pages), asks for the page after."""
    paths: dict[str, str] = {}
    for name, count in HISTORIES.items():
        base = f"/user-sessions/{sessions[name]}/items"
        paths[f"items_newest_{name}"] = f"{base}?order=desc&limit={NEWEST_LIMIT}"
        deep = int(0.9 * count)
        step = min(500, deep)
        token = ""
        for _ in range(deep // step):
            query = f"?limit={step}" + (f"&page_token={quote(token)}" if token else "")
            status, body = request(port, "GET", base + query, timeout=30)
            assert status == 200, body
            page = json.loads(body)
            token = page["next_page_token"]
        assert page["items"][-1]["seq"] == deep, page["items"][-1]
        path = f"{base}?limit={DEEP_LIMIT}&page_token={quote(token)}"
        status, body = request(port, "GET", path)
        assert status == 200, body
        assert [item["seq"] for item in json.loads(body)["items"]] == [deep + 1, deep + 2]
        paths[f"items_deep_{name}"] = path
    return paths


def delete_appended(database_url: str, sessions: dict[str, str]) -> int:
    """The items the append scenarios made (every item but the two histories')."""
    with psycopg.connect(libpq_dsn(database_url), autocommit=True) as connection:
        return connection.execute(
            "DELETE FROM conversation_items WHERE user_session_uuid <> ALL(%s::uuid[])", (list(sessions.values()),)
        ).rowcount


@dataclass
class RaceResult:
    clients: int
    seconds: float
    batches: int
    items: int
    errors: int
    # Batches whose seqs were not consecutive, and seqs given twice (both must be 0).
    broken_batches: int
    repeated_seqs: int
    stored_match: bool
    p50_ms: float
    p99_ms: float


def race_appends(port: int, user_session_uuid: str, clients: int, duration: float, batch: int = 3) -> RaceResult:
    """``clients`` threads appending batches to one session for ``duration`` seconds:
    every batch must come back with consecutive seqs, no seq twice, and the
    history must hold exactly what was acknowledged."""
    path = f"/user-sessions/{user_session_uuid}/items"
    deadline = time.monotonic() + duration
    lock = threading.Lock()
    given: list[list[int]] = []
    latencies: list[float] = []
    errors = [0]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sent = 0
        while time.monotonic() < deadline:
            sent += 1
            items = [
                {"role": "user", "content": {"client": index, "batch": sent, "part": part}} for part in range(batch)
            ]
            body = json.dumps({"items": items}).encode()
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                with lock:
                    errors[0] += 1
                connection.close()
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status != 201:
                    errors[0] += 1
                else:
                    given.append([item["seq"] for item in json.loads(answer)["items"]])
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    broken = sum(1 for seqs in given if seqs != list(range(seqs[0], seqs[0] + len(seqs))))
    every = [seq for seqs in given for seq in seqs]
    stored: list[int] = []
    token = ""
    while True:
        query = "?limit=500" + (f"&page_token={quote(token)}" if token else "")
        status, body = request(port, "GET", path + query, timeout=30)
        assert status == 200, body
        page = json.loads(body)
        stored += [item["seq"] for item in page["items"]]
        token = page["next_page_token"]
        if not token:
            break
    ordered = sorted(latencies)
    return RaceResult(
        clients=clients,
        seconds=round(seconds, 1),
        batches=len(given),
        items=len(every),
        errors=errors[0],
        broken_batches=broken,
        repeated_seqs=len(every) - len(set(every)),
        stored_match=sorted(every) == stored,
        p50_ms=round(percentile(ordered, 0.5), 2),
        p99_ms=round(percentile(ordered, 0.99), 2),
    )


def python_requests(scenario: str, uuids: list[str], hot: int, deep_path: str) -> Callable[[random.Random], Request]:
    """The Python client's version of each shape of ``bench/wrk/scenario.lua``."""
    counter = itertools.count(1)

    def get(rng: random.Random) -> Request:
        return Request("GET", f"/user-sessions/{rng.choice(uuids)}")

    def get_hot(rng: random.Random) -> Request:
        return Request("GET", f"/user-sessions/{uuids[rng.randrange(min(hot, len(uuids)))]}")

    def post(rng: random.Random) -> Request:
        sent = next(counter)
        body = {
            "name": f"Bench User {sent}",
            "email": f"bench{sent}@example.com",
            "metadata": {"source": "bench-post", "channel": "web", "step": sent % 12},
        }
        return Request("POST", "/user-sessions", json.dumps(body).encode(), {"Content-Type": "application/json"})

    def patch(rng: random.Random) -> Request:
        sent = next(counter)
        body = json.dumps({"name": f"Patched {sent}", "email": f"patched{sent}@example.com"}).encode()
        headers = {"Content-Type": "application/merge-patch+json"}
        return Request("PATCH", f"/user-sessions/{rng.choice(uuids)}", body, headers)

    def first(rng: random.Random) -> Request:
        return Request("GET", FIRST_PAGE)

    def deep(rng: random.Random) -> Request:
        return Request("GET", deep_path)

    def append(rng: random.Random) -> Request:
        sent = next(counter)
        items = [
            {"type": "message", "role": "user", "content": {"role": "user", "content": f"Hello Maria, turn {sent}"}}
            for _ in range(APPEND_BATCH[scenario])
        ]
        body = json.dumps({"items": items}).encode()
        return Request("POST", f"/user-sessions/{rng.choice(uuids)}/items", body, {"Content-Type": "application/json"})

    shapes = {"get": get, "get_hot": get_hot, "post": post, "patch": patch, "list_first": first, "list_deep": deep}
    shapes.update(dict.fromkeys(APPEND_BATCH, append))
    if scenario.startswith("items_"):
        return lambda rng: Request("GET", deep_path)  # the items read's own path (see Load)
    return shapes[scenario]


class Load:
    """Runs one scenario against one target, with wrk or, without it, the Python client."""

    def __init__(self, args: argparse.Namespace, uuids_path: Path) -> None:
        self.args = args
        self.uuids_path = uuids_path
        self.uuids = uuids_path.read_text().split()
        self.use_wrk = have_wrk() and not args.python_load

    def __call__(self, target: Target, scenario: str, duration: float) -> LoadResult:
        args = self.args
        path = target.item_paths.get(scenario, target.deep_path)
        if self.use_wrk:
            settings = {"BENCH_UUIDS": str(self.uuids_path), "BENCH_HOT": str(args.hot)}
            shape = scenario
            if scenario.startswith("list_"):
                settings["BENCH_PATH"] = FIRST_PAGE if scenario == "list_first" else target.deep_path
                shape = "path"
            elif scenario.startswith("items_"):
                settings["BENCH_PATH"] = path
                shape = "path"
            elif scenario in APPEND_BATCH:
                settings["BENCH_BATCH"] = str(APPEND_BATCH[scenario])
                shape = "items"
            return run_wrk(target.server.port, shape, duration, args.connections, args.threads, args.timeout, settings)
        make_request = python_requests(scenario, self.uuids, args.hot, path)
        return run_python_load(
            target.server.port, make_request, EXPECTED_STATUS[scenario], duration, args.connections, args.timeout
        )


def worker_class(log_path: Path) -> str:
    found = re.search(r"Using worker: (\w+)", log_path.read_text(errors="replace"))
    return found.group(1) if found else "?"


def cache_hits(server: Server) -> tuple[float, float]:
    """Cache hits and misses so far, from ``/metrics`` (summed over the workers)."""
    status, body = request(server.port, "GET", "/metrics")
    assert status == 200, body
    counts = {"hit": 0.0, "miss": 0.0}
    for line in body.decode().splitlines():
        for result in counts:
            if line.startswith(f'cache_requests_total{{result="{result}"}}'):
                counts[result] += float(line.rsplit(" ", 1)[1])
    return counts["hit"], counts["miss"]


def summary(target: Target) -> dict[str, Any]:
    """Median over the rounds of req/s, p50 and p99 and CPU per request; errors summed."""
    out: dict[str, Any] = {}
    for scenario, runs in target.runs.items():
        out[scenario] = {
            "rps": round(statistics.median(run.rate for run in runs), 1),
            "p50_ms": round(statistics.median(run.p50_ms for run in runs), 2),
            "p99_ms": round(statistics.median(run.p99_ms for run in runs), 2),
            "errors": sum(run.errors for run in runs),
            "cpu_ms_per_request": round(statistics.median(target.cpu_ms[scenario]), 3),
            "cache_hit_pct": round(statistics.median(target.hit_pct[scenario]), 1)
            if target.hit_pct.get(scenario)
            else None,
            "rounds": [
                {
                    "rps": round(run.rate, 1),
                    "p50_ms": round(run.p50_ms, 2),
                    "p99_ms": round(run.p99_ms, 2),
                    "unexpected_status": run.unexpected_status,
                    "socket_errors": run.socket_errors,
                }
                for run in runs
            ],
        }
    return out


def deep_first_ratio(target: Target) -> float | None:
    """Each round's list_deep/list_first, then the median over the rounds."""
    firsts, deeps = target.runs.get("list_first"), target.runs.get("list_deep")
    if not firsts or not deeps:
        return None
    return round(statistics.median(d.rate / f.rate for f, d in zip(firsts, deeps, strict=True) if f.rate), 3)


def cost_ratio(target: Target, scenario: str, baseline: str) -> float | None:
    """How much one request of ``scenario`` costs against one of ``baseline``:
    each round's req/s of the baseline over the scenario's, then the median."""
    runs, base = target.runs.get(scenario), target.runs.get(baseline)
    if not runs or not base:
        return None
    return round(statistics.median(b.rate / r.rate for b, r in zip(base, runs, strict=True) if r.rate), 3)


def report(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["settings"]
    lines = [
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, Redis {m['redis']}; {m['date']}",
        f"run: {s['rows']} rows ({s['live_rows']} live), gunicorn -w {s['workers']} ({s['worker_class']}), "
        f"{s['load']}, {s['duration']} s x {s['rounds']} rounds (median)",
        "",
        f"{'scenario':<19}{'target':<15}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU ms/req':>12}"
        f"{'cache hits':>12}",
    ]
    for scenario in s["scenarios"]:
        for name, scenarios in result["results"].items():
            row = scenarios.get(scenario)
            if row is None:
                continue
            hits = "-" if row["cache_hit_pct"] is None else f"{row['cache_hit_pct']:.0f} %"
            lines.append(
                f"{scenario:<19}{name:<15}{row['rps']:>9.1f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
                f"{row['errors']:>8}{row['cpu_ms_per_request']:>12.2f}{hits:>12}"
            )
    lines.append("")
    ratios = [f"{name} {ratio:.2f}" for name, ratio in result["deep_first_ratio"].items() if ratio is not None]
    if ratios:
        lines.append(f"list_deep/list_first req/s (median of per-round ratios): {', '.join(ratios)}")
    for name, ratios in result["cost_ratios"].items():
        shown = [
            f"{scenario}/{baseline} {ratio:.2f} (at most {bound:g})"
            for (scenario, baseline, bound), ratio in zip(COST_BOUNDS, ratios, strict=True)
            if ratio is not None
        ]
        if shown:
            lines.append(f"cost per request (median of per-round req/s ratios), {name}: {', '.join(shown)}")
        rows = result["results"][name]
        by_cpu = [
            f"{scenario}/{baseline} {rows[scenario]['cpu_ms_per_request'] / rows[baseline]['cpu_ms_per_request']:.2f}"
            for scenario, baseline, _bound in COST_BOUNDS
            if scenario in rows and baseline in rows and rows[baseline]["cpu_ms_per_request"]
        ]
        if by_cpu:
            lines.append(f"cost per request (workers' CPU ms/req), {name}: {', '.join(by_cpu)}")
    for name, race in result["item_races"].items():
        lines.append(
            f"items race, {name}: {race['clients']} clients appending batches of 3 to one session for "
            f"{race['seconds']} s: {race['batches']} batches ({race['items']} items), {race['errors']} errors, "
            f"{race['broken_batches']} batches not consecutive, {race['repeated_seqs']} seqs given twice, "
            f"history {'holds exactly' if race['stored_match'] else 'DIFFERS FROM'} what was acknowledged; "
            f"p50 {race['p50_ms']:.1f} ms, p99 {race['p99_ms']:.1f} ms"
        )
    for name, sizes in result["rss_mib"].items():
        lines.append(f"RSS per worker after the run, {name}: {', '.join(f'{size:.1f}' for size in sizes)} MiB")
    for name, (hits, misses) in result["cache"].items():
        lines.append(f"cache, {name}: {hits:.0f} hits, {misses:.0f} misses in all (warm-up included)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        required="BENCH_DATABASE_URL" not in os.environ,
        help="a scratch PostgreSQL database: it is dropped and made afresh (default: $BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        required="BENCH_REDIS_URL" not in os.environ,
        help="the Redis database of project_redis; the service's keys in it are deleted (default: $BENCH_REDIS_URL)",
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5, help="seconds of each scenario, target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--timeout", type=int, default=10, help="seconds before a request counts as timed out")
    parser.add_argument("--hot", type=int, default=1000, help="sessions get_hot reads")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of get against each target before round 1")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset, run in this order")
    parser.add_argument("--python-load", action="store_true", help="use the Python client even if wrk is there")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every number here")
    parser.add_argument(
        "--race-seconds", type=float, default=30, help="seconds of the items race against project (0: none)"
    )
    parser.add_argument("--race-clients", type=int, default=16, help="clients of the items race")
    args = parser.parse_args()
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="run-bench-"))
    database_url: str = args.database_url
    recreate_database(database_url)
    about = machine(database_url, args.redis_url)
    migrate(database_url)
    seeded = seed(database_url, args.rows)
    uuids_path = workdir / "uuids.txt"
    write_live_uuids(database_url, uuids_path)
    histories = seed_items(database_url, uuids_path.read_text().split())
    removed = forget_cache(args.redis_url)
    if removed:
        log(f"deleted {removed} cache keys of an earlier run from {args.redis_url}")
    load = Load(args, uuids_path)
    load_name = (
        f"wrk -t{args.threads} -c{args.connections}"
        if load.use_wrk
        else f"Python client, {args.connections} connections"
    )

    targets: list[Target] = []
    try:
        for name, settings in (("project", {}), ("project_redis", {"REDIS_URL": args.redis_url})):
            environ = server_environment(database_url, **settings)
            server = start_gunicorn(environ, args.workers, workdir / f"{name}.log")
            targets.append(Target(name, server, cached="REDIS_URL" in settings))
        readiness = json.loads(request(targets[1].server.port, "GET", "/readyz")[1])
        if readiness.get("cache") != "ok":
            raise RuntimeError(f"project_redis does not reach Redis at {args.redis_url}: {readiness}")
        paths = item_paths(targets[0].server.port, histories)
        for target in targets:
            target.deep_path = deep_list_path(target.server.port, seeded.deep_before)
            target.item_paths = paths
            if args.warmup > 0:
                load(target, "get", args.warmup)
                target.server.drain()
        log(f"up: {', '.join(t.name for t in targets)} ({args.workers} workers each); load: {load_name}")

        for round_number in range(args.rounds):
            # Alternate which target goes first, so neither always follows the other's load.
            ordered = targets if round_number % 2 == 0 else targets[::-1]
            for scenario in scenarios:
                for target in ordered:
                    pids = worker_pids(target.server.pid)
                    hits_before = cache_hits(target.server) if target.cached else (0.0, 0.0)
                    cpu_before = cpu_seconds(pids)
                    result = load(target, scenario, args.duration)
                    target.server.drain()
                    cpu = cpu_seconds(pids) - cpu_before
                    if target.cached:
                        hits, misses = (a - b for a, b in zip(cache_hits(target.server), hits_before, strict=True))
                        if hits + misses:
                            target.hit_pct.setdefault(scenario, []).append(100 * hits / (hits + misses))
                    target.runs.setdefault(scenario, []).append(result)
                    target.cpu_ms.setdefault(scenario, []).append(cpu * 1000 / max(1, result.requests))
                    posted = delete_posted(database_url) if scenario == "post" else 0
                    if scenario in APPEND_BATCH:
                        posted = delete_appended(database_url, histories)
                    log(
                        f"  round {round_number + 1} {scenario:<17} {target.name:<14} {result.rate:8.1f} req/s  "
                        f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  errors {result.errors}"
                        + (
                            f"  (deleted {posted} posted rows)"
                            if scenario == "post" or scenario in APPEND_BATCH
                            else ""
                        )
                    )
        races: dict[str, RaceResult] = {}
        if args.race_seconds > 0:
            raced = uuids_path.read_text().split()[-3]  # a session of its own
            races["project"] = race_appends(targets[0].server.port, raced, args.race_clients, args.race_seconds)
            targets[0].server.drain()
            log(f"  items race: {races['project']}")
        rss = {t.name: [round(rss_mib(pid), 1) for pid in worker_pids(t.server.pid)] for t in targets}
        cache = {t.name: cache_hits(t.server) for t in targets if t.cached}
        classes = sorted({worker_class(t.server.log_path) for t in targets})
    except BaseException:
        log(f"stopped; the servers' logs are in {workdir}")
        raise
    finally:
        for target in targets:
            target.server.stop()

    outcome = {
        "machine": about,
        "settings": {
            "rows": args.rows,
            "live_rows": seeded.live,
            "deep_row": seeded.deep_row,
            "workers": args.workers,
            "worker_class": "/".join(classes),
            "load": load_name,
            "duration": args.duration,
            "rounds": args.rounds,
            "scenarios": scenarios,
            "deep_path": targets[0].deep_path,
        },
        "results": {t.name: summary(t) for t in targets},
        "deep_first_ratio": {t.name: deep_first_ratio(t) for t in targets},
        "cost_ratios": {t.name: [cost_ratio(t, a, b) for a, b, _bound in COST_BOUNDS] for t in targets},
        "item_races": {name: race.__dict__ for name, race in races.items()},
        "rss_mib": rss,
        "cache": cache,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(report(outcome))
    if args.json:
        args.json.write_text(json.dumps(outcome, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {outcome['seconds']:.0f} s")


if __name__ == "__main__":
    main()
