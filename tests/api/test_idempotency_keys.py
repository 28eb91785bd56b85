"""``Idempotency-Key`` on POST, on every test database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.models import IN_FLIGHT
from tests.conftest import make_app
from tests.support.stored_state import count_user_sessions, idempotency_records, set_idempotency_records

KEY = "c0ffee-7f3a-4d2b-9c1e"


def create(client: FlaskClient, body: Any = None, key: str | None = KEY, **kwargs: Any) -> TestResponse:
    headers = {} if key is None else {"Idempotency-Key": key}
    if "data" in kwargs:
        return client.post("/user-sessions", headers=headers, content_type="application/json", **kwargs)
    return client.post("/user-sessions", json={} if body is None else body, headers=headers, **kwargs)


def test_without_a_key_every_post_creates(app: Flask, client: FlaskClient) -> None:
    assert create(client, {"name": "twice"}, key=None).status_code == 201
    assert create(client, {"name": "twice"}, key=None).status_code == 201
    assert count_user_sessions(app, name="twice") == 2
    assert idempotency_records(app) == []


def test_a_retry_replays_the_first_response(app: Flask, client: FlaskClient) -> None:
    first = create(client, {"name": "once", "metadata": {"step": 1}})
    retry = create(client, {"name": "once", "metadata": {"step": 1}})
    assert first.status_code == retry.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    for header in ("ETag", "Location", "Content-Type", "Cache-Control", "Vary"):
        assert retry.headers[header] == first.headers[header]
    assert retry.headers["X-Correlation-ID"] != first.headers["X-Correlation-ID"]  # the replay's own
    assert count_user_sessions(app, name="once") == 1


def test_the_same_body_means_equal_json(app: Flask, client: FlaskClient) -> None:
    first = create(client, data='{"name": "same", "consent_user_data": true}')
    retry = create(client, data='{ "consent_user_data":true,\n"name":"same" }')
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert count_user_sessions(app, name="same") == 1


def test_an_empty_body_and_an_empty_object_are_the_same_request(client: FlaskClient) -> None:
    first = client.post("/user-sessions", headers={"Idempotency-Key": KEY})
    retry = create(client, {})
    assert first.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["uuid"] == first.get_json()["uuid"]


def test_the_same_key_with_another_body_is_refused(app: Flask, client: FlaskClient) -> None:
    assert create(client, {"name": "first"}).status_code == 201
    response = create(client, {"name": "second"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "Idempotent-Replayed" not in response.headers
    assert count_user_sessions(app, name="second") == 0
    assert create(client, {"name": "first"}).headers["Idempotent-Replayed"] == "true"  # the record stands


def test_one_and_one_point_zero_are_different_bodies(client: FlaskClient) -> None:
    assert create(client, {"metadata": {"n": 1}}).status_code == 201
    assert create(client, {"metadata": {"n": 1.0}}).status_code == 422


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="a space"),
        pytest.param("two words", id="inner space"),
        pytest.param("tab\there", id="a tab"),
        pytest.param("caf\u00e9", id="not ascii"),
        pytest.param("del\x7f", id="DEL"),
        pytest.param("k" * 256, id="256 characters"),
    ],
)
def test_a_malformed_key_is_a_bad_request(app: Flask, client: FlaskClient, key: str) -> None:
    response = create(client, {"name": "malformed key"}, key=key)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "INVALID_HEADER"
    assert list(body["errors"]) == ["Idempotency-Key"]
    assert count_user_sessions(app, name="malformed key") == 0
    assert idempotency_records(app) == []


def test_a_key_sent_twice_is_a_bad_request(client: FlaskClient) -> None:
    response = client.post("/user-sessions", json={}, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    assert response.status_code == 400
    assert response.get_json()["code"] == "INVALID_HEADER"


def test_a_key_of_255_visible_characters_is_accepted(client: FlaskClient) -> None:
    # Every visible ASCII character but the comma (a header sent twice arrives joined by commas).
    visible = [chr(code) for code in range(33, 127) if chr(code) != ","]
    key = "".join(visible[index % len(visible)] for index in range(255))
    assert create(client, {}, key=key).status_code == 201
    assert create(client, {}, key=key).headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("first", "status"),
    [
        pytest.param({"data": '{"name": '}, 400, id="malformed JSON"),
        pytest.param({"data": "name=x", "content_type": "text/plain"}, 415, id="wrong media type"),
        pytest.param({"json": {"name": "x" * 201}}, 422, id="invalid field"),
        pytest.param({"json": {"version": 7}}, 422, id="read-only field"),
    ],
)
def test_a_request_that_fails_validation_is_not_remembered(
    app: Flask, client: FlaskClient, first: dict[str, Any], status: int
) -> None:
    first.setdefault("content_type", "application/json")
    if "json" in first:
        first.pop("content_type")
    refused = client.post("/user-sessions", headers={"Idempotency-Key": KEY}, **first)
    assert refused.status_code == status
    assert idempotency_records(app) == []
    retried = create(client, {"name": "fixed"})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_a_conflict_is_remembered_and_replayed(app: Flask, client: FlaskClient) -> None:
    taken = str(uuid.uuid4())
    assert create(client, {"uuid": taken}, key=None).status_code == 201
    conflict = create(client, {"uuid": taken})
    assert conflict.status_code == 409
    assert conflict.get_json()["code"] == "USER_SESSION_ALREADY_EXISTS"
    assert client.delete(f"/user-sessions/{taken}?purge=true").status_code == 204
    replay = create(client, {"uuid": taken})
    assert replay.status_code == 409
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == conflict.get_data()
    assert count_user_sessions(app, uuid=uuid.UUID(taken)) == 0


def test_keys_are_scoped_by_path(client: FlaskClient, create_session: Callable[..., dict[str, Any]]) -> None:
    user_session = create_session()
    assert client.delete(f"/user-sessions/{user_session['uuid']}").status_code == 204
    created = create(client, {})
    restored = client.post(f"/user-sessions/{user_session['uuid']}/restore", headers={"Idempotency-Key": KEY})
    assert (created.status_code, restored.status_code) == (201, 200)
    assert "Idempotent-Replayed" not in restored.headers


def test_a_restore_is_replayed_not_repeated(client: FlaskClient, create_session: Callable[..., dict[str, Any]]) -> None:
    user_session = create_session()
    client.delete(f"/user-sessions/{user_session['uuid']}")
    path = f"/user-sessions/{user_session['uuid']}/restore"
    first = client.post(path, headers={"Idempotency-Key": KEY})
    assert first.status_code == 200
    # The same session spelled in upper case is the same path.
    replay = client.post(f"/user-sessions/{user_session['uuid'].upper()}/restore", headers={"Idempotency-Key": KEY})
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == first.get_data()
    assert replay.headers["ETag"] == first.headers["ETag"]
    without_key = client.post(path)
    assert without_key.status_code == 409
    assert without_key.get_json()["code"] == "USER_SESSION_IS_LIVE"


def test_a_right_code_check_is_replayed_after_the_code_is_gone(
    client: FlaskClient, create_session: Callable[..., dict[str, Any]]
) -> None:
    user_session = create_session(email="ada@example.com")
    code = client.post(f"/user-sessions/{user_session['uuid']}/email-verification").get_json()["code"]
    path = f"/user-sessions/{user_session['uuid']}/email-verification/check"
    first = client.post(path, json={"code": code}, headers={"Idempotency-Key": KEY})
    replay = client.post(path, json={"code": code}, headers={"Idempotency-Key": KEY})
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == {"verified": True}
    assert client.get(f"/user-sessions/{user_session['uuid']}").get_json()["verification_attempts"] == 1


def test_a_wrong_code_check_is_a_422_so_its_retry_counts_again(
    app: Flask, client: FlaskClient, create_session: Callable[..., dict[str, Any]]
) -> None:
    user_session = create_session(email="ada@example.com")
    code = client.post(f"/user-sessions/{user_session['uuid']}/email-verification").get_json()["code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    path = f"/user-sessions/{user_session['uuid']}/email-verification/check"
    remaining = [
        client.post(path, json={"code": wrong}, headers={"Idempotency-Key": KEY}).get_json()["attempts_remaining"]
        for _ in range(2)
    ]
    assert remaining == [2, 1]
    assert idempotency_records(app) == []


def test_no_stored_record_reveals_a_code(
    app: Flask, client: FlaskClient, create_session: Callable[..., dict[str, Any]]
) -> None:
    user_session = create_session(email="ada@example.com")
    code = client.post(f"/user-sessions/{user_session['uuid']}/email-verification").get_json()["code"]
    path = f"/user-sessions/{user_session['uuid']}/email-verification/check"
    assert client.post(path, json={"code": code}, headers={"Idempotency-Key": KEY}).status_code == 200
    (record,) = idempotency_records(app)
    for value in record.values():
        text = value.decode() if isinstance(value, bytes) else str(value)
        assert code not in text


def test_a_request_in_flight_is_a_conflict_until_its_lease_runs_out(app: Flask, client: FlaskClient) -> None:
    first = create(client, {"name": "in flight"})
    # As if the first request were still running:
    set_idempotency_records(app, state=IN_FLIGHT, lease_expires_at=datetime.now(UTC) + timedelta(seconds=60))
    busy = create(client, {"name": "in flight"})
    assert busy.status_code == 409
    assert busy.get_json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert busy.headers["Retry-After"] == "1"
    # As if it had died mid-way: once the lease has run out, a retry takes over.
    set_idempotency_records(app, lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    taken_over = create(client, {"name": "in flight"})
    assert taken_over.status_code == 201
    assert "Idempotent-Replayed" not in taken_over.headers
    assert taken_over.get_json()["uuid"] != first.get_json()["uuid"]
    assert create(client, {"name": "in flight"}).get_json()["uuid"] == taken_over.get_json()["uuid"]


def test_a_different_body_while_in_flight_is_a_mismatch(app: Flask, client: FlaskClient) -> None:
    create(client, {"name": "in flight"})
    set_idempotency_records(app, state=IN_FLIGHT, lease_expires_at=datetime.now(UTC) + timedelta(seconds=60))
    assert create(client, {"name": "other"}).status_code == 422


def test_records_older_than_a_day_are_ignored_and_replaced(app: Flask, client: FlaskClient) -> None:
    create(client, {"name": "yesterday"})
    set_idempotency_records(app, created_at=datetime.now(UTC) - timedelta(hours=24, seconds=1))
    today = create(client, {"name": "today"})
    assert today.status_code == 201
    assert "Idempotent-Replayed" not in today.headers
    assert create(client, {"name": "today"}).headers["Idempotent-Replayed"] == "true"
    assert len(idempotency_records(app)) == 1


def test_records_younger_than_a_day_still_count(app: Flask, client: FlaskClient) -> None:
    create(client, {"name": "this morning"})
    set_idempotency_records(app, created_at=datetime.now(UTC) - timedelta(hours=23, minutes=59))
    assert create(client, {"name": "this morning"}).headers["Idempotent-Replayed"] == "true"


@pytest.fixture(scope="module")
def keyed_app(database_url: str) -> Flask:
    return make_app(database_url, API_KEYS="alpha-key-0123456789abcdef,beta-key-0123456789abcdef")


def test_keys_are_scoped_by_api_key(app: Flask, keyed_app: Flask) -> None:
    client = keyed_app.test_client()

    def create(api_key: str) -> Any:
        return client.post(
            "/user-sessions", json={"name": "same"}, headers={"X-API-Key": api_key, "Idempotency-Key": "shared"}
        )

    alpha, beta = create("alpha-key-0123456789abcdef"), create("beta-key-0123456789abcdef")
    assert alpha.status_code == beta.status_code == 201
    assert alpha.get_json()["uuid"] != beta.get_json()["uuid"]
    replay = create("alpha-key-0123456789abcdef")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["uuid"] == alpha.get_json()["uuid"]
