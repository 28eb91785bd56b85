"""Under a real gunicorn, with sync workers, the configured ones and threads: a database that
freezes (SIGSTOP, as a network partition looks) costs a request at most the
statement timeout plus a second, then a 503 with Retry-After; ``/healthz``
answers within a second throughout and ``/readyz`` turns 503 within two; the
service heals by itself when the database thaws. After the server drops every
connection (a restart, a failover), the first request on each worker is
answered, not a 503.

The database is a private PostgreSQL cluster (the shared server is never
touched); the in-process tests of the same faults are ``test_database_faults.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.support.live import LiveServer, migrate, start_gunicorn
from tests.support.pgcluster import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timing]

STATEMENT_TIMEOUT = 1.0
ANSWER_WITHIN = STATEMENT_TIMEOUT + 1  # the contract's bound on a request to a silent database
SLACK = 1.0  # what a shared, busy machine may add
FREEZE_SECONDS = 5.0
CLIENT_TIMEOUT = 10.0
SETTINGS = {
    "DB_STATEMENT_TIMEOUT_MS": str(int(STATEMENT_TIMEOUT * 1000)),
    "DB_CONNECT_TIMEOUT": "2",
    "LOG_LEVEL": "WARNING",
}
# Two clients keep requests in flight, one more polls /healthz and /readyz in turn:
# three sync workers, three of the configured (buffering) workers with one thread
# each, or one worker with four threads.
WORKER_KINDS: dict[str, tuple[int, dict[str, str]]] = {
    "sync": (3, {"GUNICORN_WORKER_CLASS": "sync"}),
    "configured": (3, {}),
    "threads": (1, {"GUNICORN_THREADS": "4"}),
}


@dataclass
class Answer:
    path: str
    sent: float
    answered: float
    status: int | None  # None: no HTTP answer (a timeout, a dropped connection)
    retry_after: str | None = None

    @property
    def took(self) -> float:
        return self.answered - self.sent


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    migrate(cluster.url)
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module", params=list(WORKER_KINDS))
def server(
    request: pytest.FixtureRequest, cluster: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workers, environ = WORKER_KINDS[request.param]
    server = start_gunicorn(
        cluster.url,
        tmp_path_factory.mktemp(f"freeze-{request.param}") / "gunicorn.log",
        workers=workers,
        environ={**SETTINGS, **environ},
    )
    yield server
    server.stop()


def ask(http: requests.Session, method: str, url: str, path: str, **kwargs: object) -> Answer:
    sent = time.monotonic()
    try:
        response = http.request(method, url, timeout=CLIENT_TIMEOUT, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException:
        http.close()
        return Answer(path, sent, time.monotonic(), None)
    return Answer(path, sent, time.monotonic(), response.status_code, response.headers.get("Retry-After"))


class Traffic:
    """Two clients reading and creating sessions, and a monitor asking /healthz
    and /readyz in turn, every answer recorded, until told to stop."""

    def __init__(self, server: LiveServer, user_session_path: str) -> None:
        self.server = server
        self.path = user_session_path
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(2)]
        self._threads.append(threading.Thread(target=self._monitor, daemon=True))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 5)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _client(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                self._record(ask(http, "GET", self.server.url(self.path), "read"))
                self._record(ask(http, "POST", self.server.url("/user-sessions"), "create", json={}))
                time.sleep(0.02)

    def _monitor(self) -> None:
        # A new connection for each check, as probes (kubelet's, a load balancer's) make them: a
        # kept-alive one belongs to the worker that took it, and waits there behind that worker's requests.
        while not self._stop.is_set():
            for path in ("/healthz", "/readyz"):
                with requests.Session() as http:
                    self._record(ask(http, "GET", self.server.url(path), path))
            time.sleep(0.1)

    def of(self, *paths: str, when: Callable[[Answer], bool] = lambda _answer: True) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if answer.path in paths and when(answer)]


def test_a_frozen_database_is_503s_within_the_deadline_healthz_within_a_second_and_readyz_503_within_two(
    server: LiveServer, cluster: PrivatePostgres
) -> None:
    created = requests.post(server.url("/user-sessions"), json={}, timeout=CLIENT_TIMEOUT)
    assert created.status_code == 201
    with Traffic(server, created.headers["Location"]) as traffic:
        time.sleep(1)
        with cluster.frozen():
            frozen_at = time.monotonic()
            time.sleep(FREEZE_SECONDS)
        thawed_at = time.monotonic()

        def healed(path: str, status: int) -> list[Answer]:
            return traffic.of(path, when=lambda answer: answer.sent > thawed_at and answer.status == status)

        deadline = thawed_at + 5
        while not (healed("create", 201) and healed("/readyz", 200)):
            assert time.monotonic() < deadline, "neither creates nor /readyz came back within 5 s of the thaw"
            time.sleep(0.05)
        time.sleep(1)

    requests_ = traffic.of("read", "create")
    during = [answer for answer in requests_ if answer.sent >= frozen_at and answer.answered <= thawed_at]
    assert during, "no request was answered during the freeze"
    # Every request is answered: a success, or a 503 with Retry-After, within the deadline.
    assert all(answer.status in (200, 201, 503) for answer in requests_), requests_
    assert all(answer.retry_after == "1" for answer in requests_ if answer.status == 503)
    assert any(answer.status == 503 for answer in during)
    slowest = max(requests_, key=lambda answer: answer.took)
    assert slowest.took <= ANSWER_WITHIN + SLACK, slowest

    health = traffic.of("/healthz")
    assert all(answer.status == 200 for answer in health), [answer for answer in health if answer.status != 200]
    assert max(answer.took for answer in health) < 1, max(health, key=lambda answer: answer.took)

    readiness = traffic.of("/readyz")
    assert max(answer.took for answer in readiness) < 1 + SLACK
    # A check sent just before the freeze counts too: it is the one that finds the database silent.
    first_unready = min(
        (answer for answer in readiness if answer.answered >= frozen_at and answer.status == 503),
        key=lambda answer: answer.answered,
    )
    assert first_unready.answered - frozen_at <= 2, first_unready
    assert first_unready.retry_after == "1"
    # Healed by itself: within the second's rest after the last silence, and a connect.
    assert min(answer.answered for answer in healed("create", 201)) - thawed_at < 3
    assert min(answer.answered for answer in healed("/readyz", 200)) - thawed_at < 3
    assert server.process.poll() is None
    assert "WORKER TIMEOUT" not in server.log()


def test_the_first_request_on_every_worker_after_the_server_dropped_every_connection_is_answered(
    server: LiveServer, cluster: PrivatePostgres
) -> None:
    created = requests.post(server.url("/user-sessions"), json={}, timeout=CLIENT_TIMEOUT)
    path = created.headers["Location"]

    def read(_index: int) -> int:
        return requests.get(server.url(path), timeout=CLIENT_TIMEOUT).status_code

    def create(_index: int) -> int:
        return requests.post(server.url("/user-sessions"), json={}, timeout=CLIENT_TIMEOUT).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        for request, expected in ((read, 200), (create, 201)):
            # Every worker (and thread) holds pooled connections …
            assert set(pool.map(request, range(40))) == {expected}
            # … which the server drops, as a restart or a failover does.
            assert cluster.terminate_backends() >= 1
            assert list(pool.map(request, range(40))) == [expected] * 40
