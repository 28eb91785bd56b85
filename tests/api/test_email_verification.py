"""Issuing and checking e-mail verification codes, on every test database."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.extensions import db
from service.schemas.fields import parse_datetime
from tests.conftest import make_app
from tests.support.stored_state import idempotency_records, set_user_session, stored_user_session

CODE_FORMAT = "Must be a string of exactly six ASCII digits."


def issue(client: FlaskClient, user_session_uuid: str, **kwargs: Any) -> TestResponse:
    return client.post(f"/user-sessions/{user_session_uuid}/email-verification", **kwargs)


def check(client: FlaskClient, user_session_uuid: str, code: Any, **kwargs: Any) -> TestResponse:
    return client.post(f"/user-sessions/{user_session_uuid}/email-verification/check", json={"code": code}, **kwargs)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def call(client: FlaskClient, path: str, endpoint: str, code: str = "123456") -> TestResponse:
    """POST to an endpoint with the body it takes (a code only for a check)."""
    body = {"code": code} if endpoint.endswith("check") else {}
    return client.post(f"{path}/{endpoint}", json=body)


def read(client: FlaskClient, user_session_uuid: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/user-sessions/{user_session_uuid}").get_json()
    return body


@pytest.fixture
def user_session(create_session: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return create_session(email="Ada@Example.com")


@pytest.fixture
def issued(client: FlaskClient, user_session: dict[str, Any]) -> dict[str, Any]:
    """The session's uuid and the code issued for it."""
    response = issue(client, user_session["uuid"])
    assert response.status_code == 201, response.get_json()
    return {"uuid": user_session["uuid"], "code": response.get_json()["code"]}


def allow_resend(app: Flask, user_session_uuid: str) -> None:
    """Move the last issue out of the cooldown."""
    set_user_session(app, user_session_uuid, last_resend_at=datetime.now(UTC) - timedelta(seconds=31))


# Issue


def test_issues_a_six_digit_code_that_no_cache_may_keep(client: FlaskClient, user_session: dict[str, Any]) -> None:
    before = datetime.now(UTC)
    response = issue(client, user_session["uuid"])
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Vary"] == "Authorization, X-API-Key"
    body = response.get_json()
    assert set(body) == {"code", "expires_at", "resend_attempts_remaining"}
    assert re.fullmatch(r"[0-9]{6}", body["code"])
    assert body["resend_attempts_remaining"] == 3
    expires_at = parse_datetime(body["expires_at"])
    assert before + timedelta(seconds=600) <= expires_at <= datetime.now(UTC) + timedelta(seconds=600)


def test_issuing_resets_the_verification_state(client: FlaskClient, user_session: dict[str, Any]) -> None:
    body = issue(client, user_session["uuid"]).get_json()
    after = read(client, user_session["uuid"])
    assert after["verification_expires_at"] == body["expires_at"]
    assert after["verification_attempts"] == 0
    assert after["is_email_verified"] is False
    assert after["resend_attempts"] == 0  # the first issue is not a resend
    assert after["last_resend_at"] is not None
    assert after["version"] == user_session["version"] + 1
    assert parse_datetime(after["updated_at"]) > parse_datetime(user_session["updated_at"])


def test_the_code_appears_in_no_representation(client: FlaskClient, issued: dict[str, Any]) -> None:
    representation = client.get(f"/user-sessions/{issued['uuid']}")
    assert issued["code"] not in representation.get_data(as_text=True)
    assert "verification_code_hash" not in representation.get_json()


def test_only_a_keyed_hash_of_the_code_is_stored(app: Flask, issued: dict[str, Any]) -> None:
    stored_hash = stored_user_session(app, issued["uuid"])["verification_code_hash"]
    assert re.fullmatch(r"[0-9a-f]{64}", stored_hash)
    assert issued["code"] not in stored_hash
    assert stored_hash != hashlib.sha256(issued["code"].encode()).hexdigest()


def test_codes_are_random(client: FlaskClient, create_session: Callable[..., dict[str, Any]]) -> None:
    codes = {
        issue(client, create_session(email=f"{index}@example.com")["uuid"]).get_json()["code"] for index in range(8)
    }
    assert len(codes) > 1


def test_a_session_without_email_cannot_be_verified(
    client: FlaskClient, create_session: Callable[..., dict[str, Any]]
) -> None:
    user_session = create_session()
    response = issue(client, user_session["uuid"])
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "EMAIL_MISSING"
    assert read(client, user_session["uuid"])["version"] == 1


@pytest.mark.parametrize("endpoint", ["email-verification", "email-verification/check"])
def test_an_unknown_session_is_not_found(client: FlaskClient, endpoint: str) -> None:
    response = call(client, f"/user-sessions/{uuid.uuid4()}", endpoint)
    assert response.status_code == 404
    assert response.get_json()["code"] == "USER_SESSION_NOT_FOUND"


@pytest.mark.parametrize("endpoint", ["email-verification", "email-verification/check"])
def test_a_malformed_uuid_is_not_found(client: FlaskClient, endpoint: str) -> None:
    response = call(client, "/user-sessions/not-a-uuid", endpoint)
    assert response.status_code == 404
    assert response.get_json()["code"] == "USER_SESSION_NOT_FOUND"


@pytest.mark.parametrize("endpoint", ["email-verification", "email-verification/check"])
def test_a_deleted_session_is_not_found(client: FlaskClient, issued: dict[str, Any], endpoint: str) -> None:
    assert client.delete(f"/user-sessions/{issued['uuid']}").status_code == 204
    response = call(client, f"/user-sessions/{issued['uuid']}", endpoint, issued["code"])
    assert response.status_code == 404
    assert response.get_json()["code"] == "USER_SESSION_NOT_FOUND"


@pytest.mark.parametrize("endpoint", ["email-verification", "email-verification/check"])
def test_an_expired_session_is_not_found(
    app: Flask, client: FlaskClient, issued: dict[str, Any], endpoint: str
) -> None:
    set_user_session(app, issued["uuid"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = call(client, f"/user-sessions/{issued['uuid']}", endpoint, issued["code"])
    assert response.status_code == 404
    assert response.get_json()["code"] == "USER_SESSION_NOT_FOUND"


def test_a_reissue_within_the_cooldown_is_refused_with_retry_after(client: FlaskClient, issued: dict[str, Any]) -> None:
    version = read(client, issued["uuid"])["version"]
    response = issue(client, issued["uuid"])
    assert response.status_code == 429
    assert response.get_json()["code"] == "VERIFICATION_RESEND_TOO_SOON"
    assert response.headers["Retry-After"] in ("29", "30")
    assert read(client, issued["uuid"])["version"] == version
    assert check(client, issued["uuid"], issued["code"]).status_code == 200  # the first code still stands


def test_retry_after_counts_the_cooldown_left_rounded_up(
    app: Flask, client: FlaskClient, issued: dict[str, Any]
) -> None:
    set_user_session(app, issued["uuid"], last_resend_at=datetime.now(UTC) - timedelta(seconds=20.5))
    response = issue(client, issued["uuid"])
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "10"


def test_a_reissue_is_a_resend_that_replaces_the_code(app: Flask, client: FlaskClient, issued: dict[str, Any]) -> None:
    assert check(client, issued["uuid"], wrong(issued["code"])).status_code == 422
    allow_resend(app, issued["uuid"])
    response = issue(client, issued["uuid"])
    assert response.status_code == 201
    assert response.get_json()["resend_attempts_remaining"] == 2
    after = read(client, issued["uuid"])
    assert after["resend_attempts"] == 1
    assert after["verification_attempts"] == 0
    assert after["last_resend_at"] == after["updated_at"]
    new_code = response.get_json()["code"]
    if new_code != issued["code"]:
        assert check(client, issued["uuid"], issued["code"]).status_code == 422
    assert check(client, issued["uuid"], new_code).status_code == 200


def test_reissuing_clears_a_verified_email(app: Flask, client: FlaskClient, issued: dict[str, Any]) -> None:
    assert check(client, issued["uuid"], issued["code"]).status_code == 200
    assert read(client, issued["uuid"])["is_email_verified"] is True
    allow_resend(app, issued["uuid"])
    assert issue(client, issued["uuid"]).status_code == 201
    assert read(client, issued["uuid"])["is_email_verified"] is False


def test_resends_run_out_and_then_no_retry_after_is_offered(
    app: Flask, client: FlaskClient, issued: dict[str, Any]
) -> None:
    for remaining in (2, 1, 0):
        allow_resend(app, issued["uuid"])
        response = issue(client, issued["uuid"])
        assert response.status_code == 201
        assert response.get_json()["resend_attempts_remaining"] == remaining
    for _ in range(2):  # within the cooldown and past it: waiting would not help
        response = issue(client, issued["uuid"])
        assert response.status_code == 429
        assert response.get_json()["code"] == "VERIFICATION_RESEND_LIMIT_REACHED"
        assert "Retry-After" not in response.headers
        allow_resend(app, issued["uuid"])
    after = read(client, issued["uuid"])
    assert after["resend_attempts"] == 3
    assert after["max_resend_attempts"] == 3


def test_issuing_takes_an_empty_object_as_body(client: FlaskClient, user_session: dict[str, Any]) -> None:
    assert issue(client, user_session["uuid"], json={}).status_code == 201


def test_issuing_refuses_body_fields(client: FlaskClient, user_session: dict[str, Any]) -> None:
    response = issue(client, user_session["uuid"], json={"email": "other@example.com"})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"email"}
    assert read(client, user_session["uuid"])["version"] == 1


def test_issuing_refuses_query_parameters(client: FlaskClient, user_session: dict[str, Any]) -> None:
    response = client.post(f"/user-sessions/{user_session['uuid']}/email-verification?resend=true")
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {"resend"}


def test_issuing_ignores_idempotency_keys_and_never_stores_the_code(
    app: Flask, client: FlaskClient, user_session: dict[str, Any]
) -> None:
    headers = {"Idempotency-Key": "issue-1"}
    first = issue(client, user_session["uuid"], headers=headers)
    allow_resend(app, user_session["uuid"])
    second = issue(client, user_session["uuid"], headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["resend_attempts_remaining"] == 2
    assert idempotency_records(app) == []
    malformed = issue(client, user_session["uuid"], headers={"Idempotency-Key": " "})
    assert malformed.status_code == 429  # the key is not even read: only the cooldown speaks


# Check


def test_the_right_code_verifies_the_email_and_is_forgotten(
    app: Flask, client: FlaskClient, issued: dict[str, Any]
) -> None:
    version = read(client, issued["uuid"])["version"]
    response = check(client, issued["uuid"], issued["code"])
    assert response.status_code == 200
    assert response.get_json() == {"verified": True}
    assert response.headers["Cache-Control"] == "private, no-cache"
    after = read(client, issued["uuid"])
    assert after["is_email_verified"] is True
    assert after["verification_attempts"] == 1  # every check counts
    assert after["verification_expires_at"] is None
    assert after["version"] == version + 1
    assert stored_user_session(app, issued["uuid"])["verification_code_hash"] is None
    again = check(client, issued["uuid"], issued["code"])
    assert again.status_code == 409
    assert again.get_json()["code"] == "VERIFICATION_CODE_NOT_ISSUED"


def test_a_wrong_code_counts_down_the_attempts(client: FlaskClient, issued: dict[str, Any]) -> None:
    version = read(client, issued["uuid"])["version"]
    for remaining in (2, 1, 0):
        response = check(client, issued["uuid"], wrong(issued["code"]))
        assert response.status_code == 422
        assert response.mimetype == "application/problem+json"
        body = response.get_json()
        assert body["code"] == "VERIFICATION_CODE_INCORRECT"
        assert body["verified"] is False
        assert body["attempts_remaining"] == remaining
        assert body["status"] == 422
        assert wrong(issued["code"]) not in response.get_data(as_text=True)
    after = read(client, issued["uuid"])
    assert after["verification_attempts"] == 3
    assert after["is_email_verified"] is False
    assert after["version"] == version + 3


def test_attempts_used_up_refuse_even_the_right_code(client: FlaskClient, issued: dict[str, Any]) -> None:
    for _ in range(3):
        assert check(client, issued["uuid"], wrong(issued["code"])).status_code == 422
    version = read(client, issued["uuid"])["version"]
    for code in (wrong(issued["code"]), issued["code"]):
        response = check(client, issued["uuid"], code)
        assert response.status_code == 429
        assert response.get_json()["code"] == "VERIFICATION_ATTEMPTS_EXHAUSTED"
        assert "Retry-After" not in response.headers
    after = read(client, issued["uuid"])
    assert after["verification_attempts"] == 3
    assert after["is_email_verified"] is False
    assert after["version"] == version  # refused checks change nothing


def test_a_new_code_brings_new_attempts(app: Flask, client: FlaskClient, issued: dict[str, Any]) -> None:
    for _ in range(3):
        check(client, issued["uuid"], wrong(issued["code"]))
    allow_resend(app, issued["uuid"])
    new_code = issue(client, issued["uuid"]).get_json()["code"]
    assert read(client, issued["uuid"])["verification_attempts"] == 0
    assert check(client, issued["uuid"], new_code).status_code == 200


def test_no_code_issued_is_a_conflict(client: FlaskClient, user_session: dict[str, Any]) -> None:
    response = check(client, user_session["uuid"], "123456")
    assert response.status_code == 409
    assert response.get_json()["code"] == "VERIFICATION_CODE_NOT_ISSUED"
    assert read(client, user_session["uuid"])["version"] == 1


def test_an_expired_code_is_gone(app: Flask, client: FlaskClient, issued: dict[str, Any]) -> None:
    set_user_session(app, issued["uuid"], verification_expires_at=datetime.now(UTC) - timedelta(microseconds=1))
    version = read(client, issued["uuid"])["version"]
    response = check(client, issued["uuid"], issued["code"])
    assert response.status_code == 410
    assert response.get_json()["code"] == "VERIFICATION_CODE_EXPIRED"
    after = read(client, issued["uuid"])
    assert (after["verification_attempts"], after["is_email_verified"], after["version"]) == (0, False, version)


def test_expiry_is_judged_before_attempts(app: Flask, client: FlaskClient, issued: dict[str, Any]) -> None:
    for _ in range(3):
        check(client, issued["uuid"], wrong(issued["code"]))
    set_user_session(app, issued["uuid"], verification_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert check(client, issued["uuid"], issued["code"]).status_code == 410


def test_a_code_sent_to_a_former_address_does_not_verify_the_new_one(
    client: FlaskClient, issued: dict[str, Any]
) -> None:
    patched = client.patch(f"/user-sessions/{issued['uuid']}", json={"email": "mallory@example.com"})
    assert patched.status_code == 200
    response = check(client, issued["uuid"], issued["code"])
    # A new address voids the pending code: nothing is issued for it yet.
    assert response.status_code == 409
    assert response.get_json()["code"] == "VERIFICATION_CODE_NOT_ISSUED"


def test_the_address_is_matched_without_regard_to_case(client: FlaskClient, issued: dict[str, Any]) -> None:
    patched = client.patch(f"/user-sessions/{issued['uuid']}", json={"email": "ADA@example.COM"})
    assert patched.status_code == 200
    assert check(client, issued["uuid"], issued["code"]).status_code == 200


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(123456, id="a number"),
        pytest.param(12345.0, id="a float"),
        pytest.param(True, id="a boolean"),
        pytest.param(None, id="null"),
        pytest.param(["123456"], id="a list"),
        pytest.param("12345", id="five digits"),
        pytest.param("1234567", id="seven digits"),
        pytest.param("12345a", id="a letter"),
        pytest.param("", id="empty"),
        pytest.param(" 123456", id="leading space"),
        pytest.param("123456\n", id="trailing newline"),
        pytest.param("\u0661\u0662\u0663\u0664\u0665\u0666", id="arabic-indic digits"),
        pytest.param("\uff11\uff12\uff13\uff14\uff15\uff16", id="fullwidth digits"),
        pytest.param("12345\u0000", id="NUL"),
    ],
)
def test_a_code_that_is_not_six_ascii_digits_counts_no_attempt(
    client: FlaskClient, issued: dict[str, Any], code: Any
) -> None:
    version = read(client, issued["uuid"])["version"]
    response = check(client, issued["uuid"], code)
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "VALIDATION_FAILED"
    assert list(body["errors"]) == ["code"]
    assert "attempts_remaining" not in body
    after = read(client, issued["uuid"])
    assert (after["verification_attempts"], after["version"]) == (0, version)


def test_a_check_without_code_is_invalid(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.post(f"/user-sessions/{issued['uuid']}/email-verification/check", json={})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"code": ["Missing data for required field."]}


def test_a_check_with_other_fields_is_invalid(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.post(
        f"/user-sessions/{issued['uuid']}/email-verification/check", json={"code": issued["code"], "verified": True}
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"verified"}
    assert read(client, issued["uuid"])["is_email_verified"] is False


def test_a_check_with_malformed_json_is_a_bad_request(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.post(
        f"/user-sessions/{issued['uuid']}/email-verification/check",
        data='{"code": "1',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "MALFORMED_JSON"


def test_a_check_in_another_media_type_is_unsupported(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.post(
        f"/user-sessions/{issued['uuid']}/email-verification/check",
        data=f"code={issued['code']}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert read(client, issued["uuid"])["verification_attempts"] == 0


def test_other_methods_are_not_allowed(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.get(f"/user-sessions/{issued['uuid']}/email-verification")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


# Configuration


@pytest.fixture(scope="module")
def short_lived_app(database_url: str) -> Iterator[Flask]:
    """An app whose codes live one second and whose cooldown is one second."""
    app = make_app(database_url, VERIFICATION_CODE_TTL="1", VERIFICATION_RESEND_COOLDOWN="1")
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.usefixtures("app")  # its cleanup empties the shared database afterwards
def test_code_lifetime_and_cooldown_come_from_configuration(short_lived_app: Flask) -> None:
    client = short_lived_app.test_client()
    user_session = client.post("/user-sessions", json={"email": "ada@example.com"}).get_json()
    first = issue(client, user_session["uuid"])
    assert first.status_code == 201
    expires_at = parse_datetime(first.get_json()["expires_at"])
    last_issue = parse_datetime(read(client, user_session["uuid"])["last_resend_at"])
    assert expires_at - last_issue == timedelta(seconds=1)
    too_soon = issue(client, user_session["uuid"])
    assert too_soon.status_code == 429
    assert too_soon.headers["Retry-After"] == "1"
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
    assert check(client, user_session["uuid"], first.get_json()["code"]).status_code == 410
    assert issue(client, user_session["uuid"]).status_code == 201
