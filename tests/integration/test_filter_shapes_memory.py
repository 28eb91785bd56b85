"""Distinct filter shapes cannot grow a worker's memory without bound: each new
shape's statement is compiled and kept, but what is kept is bounded in bytes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer, start_gunicorn

SHAPES = 2000
ALLOWED_GROWTH_MIB = 20

FLAGS = ["email=a%40example.org", "is_email_verified=true", "consent_user_data=false"]
BOUNDS = [
    "created_after=2020-01-01T00:00:00Z",
    "created_before=2030-01-01T00:00:00Z",
    "updated_after=2020-01-01T00:00:00Z",
    "updated_before=2030-01-01T00:00:00Z",
]
COMPLETED = ["", "completed=true", "completed=false"]
DELETED = ["", "deleted=include", "deleted=only"]
SORTS = ["-created_at", "created_at", "-updated_at", "updated_at"]


def distinct_shapes(count: int) -> list[str]:
    """``count`` list queries whose filters differ in shape (which are given), not only in value."""
    everything = []
    for flags in itertools.product([False, True], repeat=len(FLAGS) + len(BOUNDS)):
        given = [name for name, on in zip(FLAGS + BOUNDS, flags, strict=True) if on]
        for completed, deleted, metadata, sort in itertools.product(COMPLETED, DELETED, range(11), SORTS):
            parameters = [*given, completed, deleted, *(f"metadata.k{i}=v" for i in range(metadata)), f"sort={sort}"]
            everything.append("&".join(parameter for parameter in parameters if parameter))
    random.Random(20261203).shuffle(everything)
    return everything[:count]


def worker_rss_mib(server: LiveServer) -> float:
    (worker,) = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def one_worker(live_database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_gunicorn(live_database_url, tmp_path / "gunicorn.log", workers=1)
    yield server
    server.stop()


def test_two_thousand_filter_shapes_keep_a_worker_within_20_mib(one_worker: LiveServer) -> None:
    with requests.Session() as http:
        for query in distinct_shapes(50):  # warm up: imports, pools, the first compilations
            assert http.get(one_worker.url(f"/user-sessions?{query}"), timeout=10).status_code == 200
        before = worker_rss_mib(one_worker)
        for query in distinct_shapes(SHAPES):
            response = http.get(one_worker.url(f"/user-sessions?{query}"), timeout=10)
            assert response.status_code == 200, response.text
        after = worker_rss_mib(one_worker)
    assert after - before <= ALLOWED_GROWTH_MIB, f"worker RSS grew from {before:.1f} to {after:.1f} MiB"
