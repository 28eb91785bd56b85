"""The first-party client (``user_sessions_client``) against a real gunicorn on PostgreSQL.

Lost answers, 503s and 429s come from :class:`tests.contract.proxy.LossyProxy`
between the client and the server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import Engine, create_engine, func, select, text

from service.models import UserSession
from tests.contract.conftest import API_KEY, RecordedSleep
from tests.contract.proxy import FORWARD, LOSE_ANSWER, REFUSE, LossyProxy
from tests.support.live import LiveServer, free_port
from user_sessions_client import (
    ClientError,
    Conflict,
    Gone,
    IdempotencyKeyInUse,
    IncorrectVerificationCode,
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


def change_behind_the_clients_back(server: LiveServer, user_session_uuid: str, **changes: Any) -> None:
    """Someone else changes the session after this client read it."""
    other = requests.patch(
        server.url(f"/user-sessions/{user_session_uuid}"),
        json=changes,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert other.status_code == 200


def database(server: LiveServer) -> Engine:
    return create_engine(server.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))


def count_sessions_named(server: LiveServer, name: str) -> int:
    engine = database(server)
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
    change_behind_the_clients_back(postgres_server, read["uuid"], name="second")

    with pytest.raises(PreconditionFailed) as stale:
        sessions.update(read, name="third")
    assert stale.value.status == 412
    assert stale.value.problem["code"] == "PRECONDITION_FAILED"
    assert sessions.get(read["uuid"])["name"] == "second"

    # Given only the uuid, or told no version, it applies to whatever is current.
    assert sessions.update(read["uuid"], name="third")["name"] == "third"
    assert sessions.update(read, name="fourth", expected_version=None)["name"] == "fourth"
    # Given a version, it applies to that version only.
    with pytest.raises(PreconditionFailed):
        sessions.update(read["uuid"], name="fifth", expected_version=read["version"])


def test_delete_of_a_session_read_earlier_is_conditional_only_when_asked(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient, postgres_server: LiveServer
) -> None:
    read = sessions.create(name="first")
    change_behind_the_clients_back(postgres_server, read["uuid"], name="second")

    with pytest.raises(PreconditionFailed):
        sessions.delete(read, expected_version=read["version"])
    assert sessions.exists(read) is True

    proxy.expect([FORWARD])
    proxied.delete(read)  # the representation names the session, nothing more
    assert "if-match" not in proxy.seen[0].headers
    assert sessions.exists(read) is False

    deleted = sessions.get(read, include_deleted=True)
    with pytest.raises(PreconditionFailed):
        sessions.restore(deleted, expected_version=deleted["version"] - 1)
    assert sessions.restore(deleted, expected_version=deleted["version"])["deleted_at"] is None


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


def test_a_code_issue_whose_answer_was_lost_is_not_sent_again(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    created = sessions.create(email=f"{uuid.uuid4().hex}@example.com")
    proxy.expect([LOSE_ANSWER])
    with pytest.raises(TransportError) as lost:
        proxied.issue_email_verification(created)
    assert lost.value.sent is True  # a code may have been issued
    assert len(proxy.seen) == 1
    assert sleep.delays == []
    # The service issued exactly one code: the first issue, no resend spent.
    after = sessions.get(created)
    assert after["verification_expires_at"] is not None
    assert after["resend_attempts"] == 0
    assert after["version"] == created["version"] + 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(http_response(504, {"code": "GATEWAY_TIMEOUT", "status": 504}), id="504"),
        pytest.param(http_response(502, {"code": "BAD_GATEWAY", "status": 502}), id="502"),
        pytest.param(http_response(503, {"code": "DATABASE_UNAVAILABLE", "status": 503}, Retry_After="1"), id="503"),
        pytest.param(http_response(429, {"code": "RATE_LIMITED", "status": 429}, Retry_After="1"), id="429"),
    ],
)
def test_a_code_issue_answered_with_a_retryable_status_is_not_sent_again(
    proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep, answer: bytes
) -> None:
    """A gateway may answer 502/504 after the service issued a code: sending it again would issue another."""
    proxy.expect([answer])
    with pytest.raises(ClientError):
        proxied.issue_email_verification(str(uuid.uuid4()))
    assert len(proxy.seen) == 1
    assert sleep.delays == []


def test_a_code_reissued_within_the_cooldown_raises_rate_limited_with_the_delay(
    sessions: UserSessionsClient, proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    created = sessions.create(email=f"{uuid.uuid4().hex}@example.com")
    first = sessions.issue_email_verification(created)
    proxy.expect([FORWARD])
    with pytest.raises(RateLimited) as cooldown:
        proxied.issue_email_verification(created)
    assert cooldown.value.code == "VERIFICATION_RESEND_TOO_SOON"
    assert cooldown.value.retry_after is not None
    assert 1 <= cooldown.value.retry_after <= 30
    assert len(proxy.seen) == 1
    assert sleep.delays == []
    assert sessions.get(created)["resend_attempts"] == 0
    assert first["resend_attempts_remaining"] == created["max_resend_attempts"]


def test_a_code_issue_that_never_connected_is_sent_again(proxy: LossyProxy, sessions: UserSessionsClient) -> None:
    created = sessions.create(email=f"{uuid.uuid4().hex}@example.com")
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    waits: list[float] = []

    def service_comes_up(seconds: float) -> None:
        waits.append(seconds)
        client.base_url = proxy.base_url

    proxy.expect([FORWARD])
    with UserSessionsClient(nobody_listens, api_key=API_KEY, backoff=0.01, sleep=service_comes_up) as client:
        issued = client.issue_email_verification(created)
    assert len(issued["code"]) == 6
    assert len(waits) == 1
    assert len(proxy.seen) == 1


def test_a_code_issue_that_can_never_connect_says_it_was_not_sent(sleep: RecordedSleep) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    client = UserSessionsClient(nobody_listens, api_key=API_KEY, sleep=sleep, retries=2)
    with client, pytest.raises(TransportError) as refused:
        client.issue_email_verification(str(uuid.uuid4()))
    assert refused.value.sent is False
    assert len(sleep.delays) == 2


def test_a_429_with_a_retry_after_longer_than_max_retry_after_is_raised_with_the_delay(
    proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    proxy.expect([http_response(429, {"code": "RATE_LIMITED", "status": 429}, Retry_After="20")])
    with pytest.raises(RateLimited) as limited:
        proxied.get(str(uuid.uuid4()))
    assert limited.value.retry_after == 20
    assert limited.value.code == "RATE_LIMITED"
    assert len(proxy.seen) == 1
    assert sleep.delays == []


def test_max_retry_after_bounds_what_the_client_waits_for(
    sessions: UserSessionsClient, proxy: LossyProxy, sleep: RecordedSleep
) -> None:
    created = sessions.create()
    limited = http_response(429, {"code": "RATE_LIMITED", "status": 429}, Retry_After="20")
    proxy.expect([limited, FORWARD])
    with UserSessionsClient(proxy.base_url, api_key=API_KEY, sleep=sleep, max_retry_after=30) as patient:
        assert patient.get(created)["uuid"] == created["uuid"]
    assert len(sleep.delays) == 1
    assert sleep.delays[0] >= 20


def test_a_409_idempotency_key_in_use_is_retried_with_the_same_key(
    proxy: LossyProxy, proxied: UserSessionsClient, sleep: RecordedSleep
) -> None:
    in_use = http_response(409, {"code": "IDEMPOTENCY_KEY_IN_USE", "status": 409}, Retry_After="1")
    proxy.expect([in_use, in_use, FORWARD])
    assert proxied.create(name="after the first finished")["name"] == "after the first finished"
    assert [seen.method for seen in proxy.seen] == ["POST"] * 3
    assert len({seen.headers["idempotency-key"] for seen in proxy.seen}) == 1
    assert len(sleep.delays) == 2
    assert all(delay >= 1 for delay in sleep.delays)


def test_a_409_idempotency_key_in_use_is_raised_with_the_key_once_in_flight_wait_is_spent(
    proxy: LossyProxy, sleep: RecordedSleep
) -> None:
    in_use = http_response(409, {"code": "IDEMPOTENCY_KEY_IN_USE", "status": 409}, Retry_After="1")
    proxy.expect([in_use] * 3)  # waits about 1 s after each: a third wait would pass 2.5 s
    client = UserSessionsClient(proxy.base_url, api_key=API_KEY, sleep=sleep, in_flight_wait=2.5)
    with client, pytest.raises(IdempotencyKeyInUse) as still:
        client.create(name="never finishes", idempotency_key="the-callers-key")
    assert still.value.idempotency_key == "the-callers-key"
    assert isinstance(still.value, Conflict)
    assert len(proxy.seen) == 3
    assert sum(sleep.delays) <= 2.5


@pytest.mark.timing  # a 409 answered within the client's 0.5 s read timeout
def test_a_retry_that_finds_the_first_attempt_still_running_waits_for_its_answer(
    sessions: UserSessionsClient, postgres_server: LiveServer
) -> None:
    """The first attempt is stuck behind a row lock past the client's read timeout; the retry,
    with the same key, is a real 409 IDEMPOTENCY_KEY_IN_USE until the first one finishes,
    and then the replay of its answer."""
    created = sessions.create()
    sessions.delete(created)
    deleted = sessions.get(created, include_deleted=True)
    engine = database(postgres_server)
    locker = engine.connect()
    try:
        locker.execute(text("SELECT 1 FROM user_sessions WHERE uuid = :uuid FOR UPDATE"), {"uuid": created["uuid"]})
        unlock = threading.Timer(2.0, locker.rollback)
        unlock.start()
        waits: list[float] = []

        def sleep_for_real(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        # Retries to spare: on a loaded machine a retry's answer may itself take over 0.5 s.
        with UserSessionsClient(
            postgres_server.base_url, api_key=API_KEY, timeout=(3.05, 0.5), retries=6, sleep=sleep_for_real
        ) as impatient:
            restored = impatient.restore(created)
        unlock.join()
    finally:
        locker.close()
        engine.dispose()
    assert restored["deleted_at"] is None
    assert restored["version"] == deleted["version"] + 1  # restored once
    assert sessions.get(created)["version"] == deleted["version"] + 1
    assert any(wait >= 1 for wait in waits)  # the 409's Retry-After was honoured


def test_an_expired_code_raises_gone(sessions: UserSessionsClient, postgres_server: LiveServer) -> None:
    created = sessions.create(email=f"{uuid.uuid4().hex}@example.com")
    issued = sessions.issue_email_verification(created)
    engine = database(postgres_server)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE user_sessions SET verification_expires_at = :past WHERE uuid = :uuid"),
                {"past": datetime.now(UTC) - timedelta(seconds=1), "uuid": created["uuid"]},
            )
    finally:
        engine.dispose()
    with pytest.raises(Gone) as expired:
        sessions.check_email_verification(created, issued["code"])
    assert expired.value.status == 410
    assert expired.value.code == "VERIFICATION_CODE_EXPIRED"


def test_a_wrong_code_raises_an_error_carrying_the_verification_fields(sessions: UserSessionsClient) -> None:
    created = sessions.create(email=f"{uuid.uuid4().hex}@example.com")
    issued = sessions.issue_email_verification(created)
    wrong = f"{(int(issued['code']) + 1) % 1_000_000:06d}"
    with pytest.raises(IncorrectVerificationCode) as incorrect:
        sessions.check_email_verification(created, wrong)
    assert isinstance(incorrect.value, InvalidRequest)
    assert incorrect.value.verified is False
    assert incorrect.value.attempts_remaining == created["max_verification_attempts"] - 1
    assert sessions.check_email_verification(created, issued["code"]) == {"verified": True}


@pytest.mark.parametrize("given_as", ["dict", "str", "UUID"])
def test_every_method_takes_the_session_or_its_uuid(sessions: UserSessionsClient, given_as: str) -> None:
    created = sessions.create(email=f"{uuid.uuid4().hex}@example.com")

    def ref(user_session: Any) -> Any:
        return {"dict": user_session, "str": user_session["uuid"], "UUID": uuid.UUID(user_session["uuid"])}[given_as]

    assert sessions.get(ref(created))["uuid"] == created["uuid"]
    assert sessions.exists(ref(created)) is True
    updated = sessions.update(ref(created), name="Ada")
    assert updated["name"] == "Ada"
    issued = sessions.issue_email_verification(ref(updated))
    assert sessions.check_email_verification(ref(updated), issued["code"]) == {"verified": True}
    current = sessions.get(ref(created))
    sessions.delete(ref(current))
    assert sessions.exists(ref(current)) is False
    assert sessions.exists(ref(current), include_deleted=True) is True
    restored = sessions.restore(ref(sessions.get(ref(current), include_deleted=True)))
    assert restored["deleted_at"] is None
    sessions.delete(ref(restored), purge=True)
    assert sessions.exists(ref(restored), include_deleted=True) is False


def test_list_page_returns_one_page_and_the_total_count_when_asked(sessions: UserSessionsClient) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    created = {sessions.create(email=email)["uuid"] for _ in range(3)}

    first = sessions.list_page(email=email, limit=2, count=True)
    assert len(first["items"]) == 2
    assert first["total_count"] == 3
    assert first["next_page_token"]

    last = sessions.list_page(email=email, limit=2, page_token=first["next_page_token"])
    assert "total_count" not in last
    assert last["next_page_token"] is None
    assert {item["uuid"] for item in first["items"] + last["items"]} == created


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
