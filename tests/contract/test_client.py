"""The first-party client (``user_sessions_client``) against a real gunicorn on PostgreSQL.

Lost answers, 503s and 429s come from :class:`tests.contract.proxy.LossyProxy`
between the client and the server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import create_engine, func, select

from service.models import UserSession
from tests.contract.conftest import API_KEY
from tests.contract.proxy import FORWARD, LOSE_ANSWER, REFUSE, LossyProxy
from tests.live import LiveServer
from user_sessions_client import (
    Conflict,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TransportError,
    UserSessionsClient,
)

pytestmark = pytest.mark.slow


def http_response(status: int, body: Any = None, **headers: str) -> bytes:
    """A raw HTTP/1.1 answer, for the proxy to give instead of the server."""
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}", "Connection: close"]
    if body is not None:
        lines.append("Content-Type: application/problem+json" if status >= 400 else "Content-Type: application/json")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@pytest.fixture
def sessions(postgres_server: LiveServer) -> Iterator[UserSessionsClient]:
    with UserSessionsClient(postgres_server.base_url, api_key=API_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def proxy(postgres_server: LiveServer) -> Iterator[LossyProxy]:
    lossy = LossyProxy(postgres_server.base_url)
    yield lossy
    lossy.stop()


class RecordedSleep:
    """Stands in for ``time.sleep``: remembers how long the client would wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def proxied(proxy: LossyProxy, sleep: RecordedSleep) -> Iterator[UserSessionsClient]:
    with UserSessionsClient(proxy.base_url, api_key=API_KEY, sleep=sleep, backoff=0.01) as client:
        yield client


def count_sessions_named(server: LiveServer, name: str) -> int:
    engine = create_engine(server.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).where(UserSession.name == name)) or 0)
    finally:
        engine.dispose()


def test_creates_reads_updates_deletes_restores_and_purges(sessions: UserSessionsClient) -> None:
    created = sessions.create(name="Ada", email="ada@example.com", metadata={"step": 1}, ttl_seconds=3600)
    assert created["version"] == 1
    assert sessions.get(created["uuid"]) == created
    assert sessions.exists(created["uuid"]) is True

    updated = sessions.update(created, metadata={"step": 2, "tool": "search"})
    assert updated["metadata"] == {"step": 2, "tool": "search"}
    assert updated["version"] == 2

    sessions.delete(updated)
    assert sessions.exists(created["uuid"]) is False
    assert sessions.exists(created["uuid"], include_deleted=True) is True
    with pytest.raises(NotFound):
        sessions.get(created["uuid"])
    assert sessions.get(created["uuid"], include_deleted=True)["deleted_at"] is not None

    restored = sessions.restore(created["uuid"])
    assert restored["deleted_at"] is None
    with pytest.raises(Conflict) as live:
        sessions.restore(created["uuid"])
    assert live.value.code == "USER_SESSION_IS_LIVE"

    sessions.delete(created["uuid"], purge=True)
    assert sessions.exists(created["uuid"], include_deleted=True) is False


def test_update_sends_if_match_from_the_version_it_read(
    sessions: UserSessionsClient, postgres_server: LiveServer
) -> None:
    read = sessions.create(name="first")
    # Someone else changes the session after this client read it.
    other = requests.patch(
        postgres_server.url(f"/user-sessions/{read['uuid']}"),
        json={"name": "second"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert other.status_code == 200

    with pytest.raises(PreconditionFailed) as stale:
        sessions.update(read, name="third")
    assert stale.value.status == 412
    assert stale.value.problem["code"] == "PRECONDITION_FAILED"
    assert sessions.get(read["uuid"])["name"] == "second"

    # Given only the uuid, it reads the current version first.
    assert sessions.update(read["uuid"], name="third")["name"] == "third"
    with pytest.raises(PreconditionFailed):
        sessions.delete(read)


def test_failures_raise_exceptions_that_carry_the_problem_body(sessions: UserSessionsClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound) as not_found:
        sessions.get(missing)
    assert not_found.value.status == 404
    assert not_found.value.code == "USER_SESSION_NOT_FOUND"
    assert not_found.value.correlation_id
    assert not_found.value.problem["status"] == 404

    with pytest.raises(InvalidRequest) as invalid:
        sessions.create(name="x" * 201, colour="blue")
    assert invalid.value.status == 422
    assert set(invalid.value.errors) == {"name", "colour"}

    created = sessions.create()
    with pytest.raises(Conflict) as exists:
        sessions.create(uuid=created["uuid"])
    assert exists.value.code == "USER_SESSION_ALREADY_EXISTS"


def test_keeps_one_connection_alive_across_requests(sessions: UserSessionsClient) -> None:
    sessions.create()
    sessions.create()
    pool = next(iter(sessions.session.get_adapter(sessions.base_url).poolmanager.pools._container.values()))
    assert pool.num_connections == 1


def test_retries_a_503_after_its_retry_after(proxy: LossyProxy, postgres_server: LiveServer) -> None:
    created = UserSessionsClient(postgres_server.base_url, api_key=API_KEY).create()
    unavailable = http_response(503, {"code": "DATABASE_UNAVAILABLE", "status": 503}, Retry_After="1")
    proxy.expect([unavailable, FORWARD])
    started = time.monotonic()
    with UserSessionsClient(proxy.base_url, api_key=API_KEY) as client:
        assert client.get(created["uuid"])["uuid"] == created["uuid"]
    assert time.monotonic() - started >= 1
    assert [seen.action for seen in proxy.seen] == [unavailable, FORWARD]


def test_retries_a_429_waiting_at_least_its_retry_after(
    proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    limited = http_response(429, {"code": "RATE_LIMITED", "status": 429}, Retry_After="2")
    proxy.expect([limited, limited, FORWARD])
    assert proxied.create(name="after the limit")["name"] == "after the limit"
    assert len(sleep.delays) == 2
    assert all(delay >= 2 for delay in sleep.delays)
    keys = {seen.headers["idempotency-key"] for seen in proxy.seen}
    assert len(keys) == 1


def test_a_429_without_retry_after_is_not_retried(proxy: LossyProxy, proxied: UserSessionsClient) -> None:
    proxy.expect([http_response(429, {"code": "VERIFICATION_ATTEMPTS_EXHAUSTED", "status": 429})])
    with pytest.raises(RateLimited) as limited:
        proxied.get(str(uuid.uuid4()))
    assert limited.value.code == "VERIFICATION_ATTEMPTS_EXHAUSTED"
    assert len(proxy.seen) == 1


def test_a_retry_after_longer_than_the_client_waits_is_raised(proxy: LossyProxy, proxied: UserSessionsClient) -> None:
    proxy.expect([http_response(503, {"code": "DATABASE_UNAVAILABLE", "status": 503}, Retry_After="3600")])
    with pytest.raises(Exception, match="DATABASE_UNAVAILABLE"):
        proxied.get(str(uuid.uuid4()))
    assert len(proxy.seen) == 1


def test_retries_a_dropped_connection_with_backoff(
    proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    created = proxied.create()
    proxy.expect([REFUSE, REFUSE, FORWARD])
    assert proxied.get(created["uuid"])["uuid"] == created["uuid"]
    assert len(sleep.delays) == 2
    assert sleep.delays[1] > 0


def test_gives_up_with_a_transport_error_after_its_retries(proxy: LossyProxy, proxied: UserSessionsClient) -> None:
    proxy.expect([REFUSE] * 4)
    with pytest.raises(TransportError):
        proxied.get(str(uuid.uuid4()))
    assert len(proxy.seen) == 4


def test_a_lost_answer_to_a_create_is_retried_with_the_same_idempotency_key(
    proxy: LossyProxy, proxied: UserSessionsClient
) -> None:
    proxy.expect([LOSE_ANSWER, FORWARD])
    created = proxied.create(name="lost once")
    assert created["name"] == "lost once"
    first, retry = proxy.seen
    assert first.action == LOSE_ANSWER
    assert first.method == retry.method == "POST"
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]


def test_a_lost_answer_to_a_create_creates_exactly_one_session(
    proxy: LossyProxy, proxied: UserSessionsClient, postgres_server: LiveServer
) -> None:
    name = f"lost-{uuid.uuid4()}"
    proxy.expect([LOSE_ANSWER, FORWARD])
    created = proxied.create(name=name)
    assert count_sessions_named(postgres_server, name) == 1
    assert proxied.get(created["uuid"])["name"] == name


def test_issuing_a_verification_code_is_never_retried_once_sent(proxy: LossyProxy, proxied: UserSessionsClient) -> None:
    proxy.expect([LOSE_ANSWER])
    with pytest.raises(TransportError):
        proxied.issue_email_verification(str(uuid.uuid4()))
    assert len(proxy.seen) == 1


def test_iter_sessions_follows_page_tokens_with_the_same_filters(
    proxy: LossyProxy, proxied: UserSessionsClient
) -> None:
    first = http_response(200, {"items": [{"uuid": "a"}, {"uuid": "b"}], "next_page_token": "t1"})
    second = http_response(200, {"items": [{"uuid": "c"}], "next_page_token": None})
    proxy.expect([first, second])
    found = list(proxied.iter_sessions(email="ada@example.com", completed=False, metadata={"team": "x"}, page_size=2))
    assert [item["uuid"] for item in found] == ["a", "b", "c"]
    queries = [parse_qs(urlsplit(seen.path).query) for seen in proxy.seen]
    filters = {"email": ["ada@example.com"], "completed": ["false"], "metadata.team": ["x"], "limit": ["2"]}
    assert queries == [filters, {**filters, "page_token": ["t1"]}]


def test_iter_sessions_pages_through_the_live_list(sessions: UserSessionsClient) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    created = {sessions.create(email=email)["uuid"] for _ in range(5)}
    listed = [item["uuid"] for item in sessions.iter_sessions(email=email, page_size=2)]
    assert sorted(listed) == sorted(created)
