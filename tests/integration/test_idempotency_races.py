"""Idempotency keys under concurrency: real gunicorn, several workers."""

from __future__ import annotations

import uuid

import requests
from sqlalchemy import create_engine, func, select

from service.models import UserSession
from tests.factories import create_live_user_session
from tests.support.live import LiveServer, race

REQUESTS = 20
ROUNDS = 3


def sessions_named(database_url: str, name: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            count: int = connection.execute(select(func.count()).where(UserSession.name == name)).scalar_one()
            return count
    finally:
        engine.dispose()


def test_twenty_concurrent_posts_with_one_key_create_one_session(
    live_server: LiveServer, live_database_url: str
) -> None:
    for round_number in range(ROUNDS):
        key, name = str(uuid.uuid4()), f"idempotent-{uuid.uuid4()}"

        def post(key: str = key, name: str = name) -> requests.Response:
            headers = {"Idempotency-Key": key}
            return requests.post(live_server.url("/user-sessions"), json={"name": name}, headers=headers, timeout=30)

        responses = race(REQUESTS, post)

        assert len(responses) == REQUESTS
        assert all(response.status_code < 500 for response in responses), [r.status_code for r in responses]
        originals = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
        replays = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
        in_flight = [r for r in responses if r.status_code == 409]
        assert len(originals) == 1, f"round {round_number}: {[r.status_code for r in responses]}"
        assert len(replays) + len(in_flight) == REQUESTS - 1
        (original,) = originals
        for replay in replays:
            assert replay.status_code == 201
            assert replay.content == original.content
            assert (replay.headers["ETag"], replay.headers["Location"]) == (
                original.headers["ETag"],
                original.headers["Location"],
            )
        assert {response.json()["code"] for response in in_flight} <= {"IDEMPOTENCY_KEY_IN_USE"}
        assert sessions_named(live_database_url, name) == 1
        retry = post()
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.content == original.content


def test_concurrent_checks_with_one_key_are_judged_once(live_server: LiveServer) -> None:
    user_session = create_live_user_session(live_server, email="idempotent-check@example.com")
    issued = requests.post(live_server.url(f"/user-sessions/{user_session['uuid']}/email-verification"), timeout=10)
    code = issued.json()["code"]
    check_url = live_server.url(f"/user-sessions/{user_session['uuid']}/email-verification/check")
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    responses = race(REQUESTS, lambda: requests.post(check_url, json={"code": code}, headers=headers, timeout=30))

    assert {response.status_code for response in responses} <= {200, 409}
    assert [r.status_code for r in responses if "Idempotent-Replayed" not in r.headers].count(200) == 1
    assert all(r.json()["code"] == "IDEMPOTENCY_KEY_IN_USE" for r in responses if r.status_code == 409)
    final = requests.get(live_server.url(f"/user-sessions/{user_session['uuid']}"), timeout=10).json()
    assert (final["is_email_verified"], final["verification_attempts"]) == (True, 1)
