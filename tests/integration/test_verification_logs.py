"""The verification code appears in the issue response and nowhere else:
not in any log line, whether gunicorn's or the service's own."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from tests.support.live import LiveServer, start_gunicorn

VERBOSE_LOGGING = {
    "LOG_LEVEL": "DEBUG",
    # Access log on stdout, gunicorn's own log at debug level: as much as it will say.
    "GUNICORN_CMD_ARGS": "--access-logfile - --log-level debug",
    # Long enough for a busy machine to finish each flow before its code expires.
    "VERIFICATION_CODE_TTL": "3",
    "VERIFICATION_RESEND_COOLDOWN": "0",
}


def appears(code: str, text: str) -> bool:
    """Whether ``code`` stands in ``text`` as a number of its own."""
    return re.search(rf"(?<![0-9]){code}(?![0-9])", text) is not None


@pytest.fixture(scope="module")
def verbose_server(live_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_path: Path = tmp_path_factory.mktemp("verbose") / "gunicorn.log"
    server = start_gunicorn(live_database_url, log_path, workers=2, environ=VERBOSE_LOGGING)
    yield server
    server.stop()


def test_no_code_reaches_the_server_log(verbose_server: LiveServer) -> None:
    created = requests.post(verbose_server.url("/user-sessions"), json={"email": "logs@example.com"}, timeout=10)
    user_session_uuid = created.json()["uuid"]
    base = verbose_server.url(f"/user-sessions/{user_session_uuid}/email-verification")
    codes: list[str] = []

    def issue() -> str:
        response = requests.post(base, timeout=10)
        assert response.status_code == 201, response.text
        codes.append(response.json()["code"])
        return codes[-1]

    def check(code: str, **headers: str) -> requests.Response:
        return requests.post(f"{base}/check", json={"code": code}, headers=headers, timeout=10)

    code = issue()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert check(wrong).status_code == 422
    assert check(code, **{"Idempotency-Key": "log-test"}).status_code == 200
    assert check(code, **{"Idempotency-Key": "log-test"}).headers["Idempotent-Replayed"] == "true"
    code = issue()
    for _ in range(3):
        check(f"{(int(code) + 1) % 1_000_000:06d}")
    assert check(code).status_code == 429
    code = issue()
    time.sleep(3.1)
    assert check(code).status_code == 410

    log = verbose_server.log()
    # The capture works: the flow's requests are in it...
    assert log.count(f"/user-sessions/{user_session_uuid}/email-verification") >= 10
    # ...and no code issued in it is.
    leaked = [code for code in codes if appears(code, log)]
    assert leaked == []


def test_no_code_reaches_the_services_loggers_even_at_debug(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG, SQLAlchemy's included: its statements,
    parameters and rows carry the keyed hash, never the code."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    user_session = client.post("/user-sessions", json={"email": "ada@example.com"}).get_json()
    base = f"/user-sessions/{user_session['uuid']}/email-verification"
    code = client.post(base).get_json()["code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert client.post(f"{base}/check", json={"code": wrong}).status_code == 422
    assert client.post(f"{base}/check", json={"code": code}, headers={"Idempotency-Key": "k"}).status_code == 200
    assert client.post(f"{base}/check", json={"code": code}).status_code == 409

    assert "UPDATE user_sessions SET verification_attempts" in caplog.text  # SQL was captured
    assert not appears(code, caplog.text)
    assert not appears(wrong, caplog.text)
