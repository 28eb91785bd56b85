"""E-mail verification under concurrency: real gunicorn, several workers."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import requests
from sqlalchemy import create_engine, select

from service.models import UserSession
from tests.factories import create_live_user_session
from tests.support.live import LiveServer, race

CHECKS = 50


def stored(database_url: str, user_session_uuid: str) -> Any:
    """The committed row, read straight from the server's database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(UserSession.__table__).where(UserSession.uuid == uuid.UUID(user_session_uuid))
            return connection.execute(query).mappings().one()
    finally:
        engine.dispose()


def issue(live_server: LiveServer, user_session_uuid: str) -> str:
    response = requests.post(live_server.url(f"/user-sessions/{user_session_uuid}/email-verification"), timeout=10)
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_fifty_concurrent_wrong_checks_judge_exactly_the_maximum(
    live_server: LiveServer, live_database_url: str
) -> None:
    user_session = create_live_user_session(live_server, email="race@example.com")
    code = issue(live_server, user_session["uuid"])
    check_url = live_server.url(f"/user-sessions/{user_session['uuid']}/email-verification/check")

    responses = race(CHECKS, lambda: requests.post(check_url, json={"code": wrong(code)}, timeout=30))

    assert len(responses) == CHECKS
    assert Counter(response.status_code for response in responses) == Counter({422: 3, 429: CHECKS - 3})
    judged = [response.json() for response in responses if response.status_code == 422]
    assert sorted(body["attempts_remaining"] for body in judged) == [0, 1, 2]
    assert all(body["code"] == "VERIFICATION_CODE_INCORRECT" and body["verified"] is False for body in judged)
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "VERIFICATION_ATTEMPTS_EXHAUSTED"
            assert "Retry-After" not in response.headers
    row = stored(live_database_url, user_session["uuid"])
    assert row["verification_attempts"] == row["max_verification_attempts"] == 3
    assert row["version"] == 1 + 1 + 3  # created, issued, three judged checks

    # Used up means used up: the right code is refused too, and nothing changes.
    right = requests.post(check_url, json={"code": code}, timeout=10)
    assert right.status_code == 429
    assert right.json()["code"] == "VERIFICATION_ATTEMPTS_EXHAUSTED"
    row = stored(live_database_url, user_session["uuid"])
    assert (row["verification_attempts"], row["is_email_verified"], row["version"]) == (3, False, 5)


def test_a_right_code_sent_twenty_times_at_once_verifies_once(live_server: LiveServer, live_database_url: str) -> None:
    user_session = create_live_user_session(live_server, email="twenty@example.com")
    code = issue(live_server, user_session["uuid"])
    check_url = live_server.url(f"/user-sessions/{user_session['uuid']}/email-verification/check")

    responses = race(20, lambda: requests.post(check_url, json={"code": code}, timeout=30))

    assert Counter(response.status_code for response in responses) == Counter({200: 1, 409: 19})
    assert {response.json()["code"] for response in responses if response.status_code == 409} == {
        "VERIFICATION_CODE_NOT_ISSUED"
    }
    row = stored(live_database_url, user_session["uuid"])
    assert (row["is_email_verified"], row["verification_attempts"], row["verification_code_hash"]) == (True, 1, None)
    assert row["version"] == 3


def test_concurrent_issues_hand_out_one_code(live_server: LiveServer, live_database_url: str) -> None:
    user_session = create_live_user_session(live_server, email="issues@example.com")
    issue_url = live_server.url(f"/user-sessions/{user_session['uuid']}/email-verification")

    responses = race(10, lambda: requests.post(issue_url, timeout=30))

    assert Counter(response.status_code for response in responses) == Counter({201: 1, 429: 9})
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "VERIFICATION_RESEND_TOO_SOON"
            assert 1 <= int(response.headers["Retry-After"]) <= 30
    row = stored(live_database_url, user_session["uuid"])
    assert (row["resend_attempts"], row["version"]) == (0, 2)
