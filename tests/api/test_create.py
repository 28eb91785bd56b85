"""POST /user-sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from tests.support.problems import assert_problem, field_errors

PUBLIC_FIELDS = {
    "uuid", "name", "email", "ip_address", "consent_user_data", "metadata", "is_email_verified",
    "verification_attempts", "max_verification_attempts", "verification_expires_at", "resend_attempts",
    "max_resend_attempts", "last_resend_at", "created_at", "updated_at", "completed_at", "expires_at",
    "deleted_at", "version",
}  # fmt: skip


def parse(timestamp: str) -> datetime:
    assert timestamp.endswith("Z")
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def test_an_empty_object_creates_an_anonymous_session(client: FlaskClient) -> None:
    response = client.post("/user-sessions", json={})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == PUBLIC_FIELDS
    assert response.headers["Location"] == f"/user-sessions/{body['uuid']}"
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["Vary"] == "Authorization, X-API-Key"
    assert body["version"] == 1
    assert body["metadata"] == {}
    assert body["name"] is body["email"] is body["ip_address"] is None
    assert body["consent_user_data"] is False
    assert body["is_email_verified"] is False
    assert body["max_verification_attempts"] == 3
    assert body["max_resend_attempts"] == 3
    assert body["created_at"] == body["updated_at"]
    assert body["deleted_at"] is None


def test_a_bare_post_without_a_body_is_an_empty_object(client: FlaskClient) -> None:
    assert client.post("/user-sessions").status_code == 201


def test_every_writable_field_is_stored_and_read_back(client: FlaskClient) -> None:
    chosen = str(uuid.uuid4())
    fields = {
        "uuid": chosen,
        "name": "Ada",
        "email": "Ada.Lovelace@Example.org",
        "ip_address": "2001:db8::1",
        "consent_user_data": True,
        "metadata": {"agent": {"step": 3, "tags": ["a", "b"]}, "ok": None},
        "completed_at": "2026-01-02T03:04:05.123456+02:00",
        "expires_at": "2999-01-01T00:00:00Z",
    }
    created = client.post("/user-sessions", json=fields).get_json()
    read = client.get(f"/user-sessions/{chosen}").get_json()
    assert created == read
    assert read["uuid"] == chosen
    assert read["email"] == "Ada.Lovelace@Example.org"  # case kept as sent
    assert read["metadata"] == {"agent": {"step": 3, "tags": ["a", "b"]}, "ok": None}  # stored as sent
    assert read["completed_at"] == "2026-01-02T01:04:05.123456Z"  # normalised to UTC, microseconds kept
    assert read["expires_at"] == "2999-01-01T00:00:00.000000Z"


def test_ttl_seconds_sets_expires_at(client: FlaskClient) -> None:
    before = datetime.now(UTC)
    body = client.post("/user-sessions", json={"ttl_seconds": 3600}).get_json()
    expires_at = parse(body["expires_at"])
    assert before + timedelta(seconds=3600) <= expires_at <= datetime.now(UTC) + timedelta(seconds=3600)


def test_null_metadata_on_create_is_an_empty_object(client: FlaskClient) -> None:
    assert client.post("/user-sessions", json={"metadata": None}).get_json()["metadata"] == {}


def test_ipv4_and_ipv6_addresses_are_stored_canonically(client: FlaskClient) -> None:
    assert client.post("/user-sessions", json={"ip_address": "192.0.2.7"}).get_json()["ip_address"] == "192.0.2.7"
    long_form = "2001:0db8:0000:0000:0000:0000:0000:0001"
    assert client.post("/user-sessions", json={"ip_address": long_form}).get_json()["ip_address"] == "2001:db8::1"


def test_a_uuid_that_exists_is_a_conflict_even_when_deleted(client: FlaskClient) -> None:
    chosen = str(uuid.uuid4())
    assert client.post("/user-sessions", json={"uuid": chosen}).status_code == 201
    assert_problem(client.post("/user-sessions", json={"uuid": chosen}), 409, "USER_SESSION_ALREADY_EXISTS")
    assert client.delete(f"/user-sessions/{chosen}").status_code == 204
    assert_problem(client.post("/user-sessions", json={"uuid": chosen}), 409, "USER_SESSION_ALREADY_EXISTS")


def test_a_purged_uuid_may_be_created_again(client: FlaskClient) -> None:
    chosen = str(uuid.uuid4())
    client.post("/user-sessions", json={"uuid": chosen})
    assert client.delete(f"/user-sessions/{chosen}?purge=true").status_code == 204
    assert client.post("/user-sessions", json={"uuid": chosen}).status_code == 201


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a" * 250 + "@b.cd"}, "email"),
        ({"ip_address": "300.1.1.1"}, "ip_address"),
        ({"ip_address": "fe80::1%eth0"}, "ip_address"),
        ({"consent_user_data": 1}, "consent_user_data"),
        ({"consent_user_data": "true"}, "consent_user_data"),
        ({"consent_user_data": None}, "consent_user_data"),
        ({"metadata": []}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {"big": "x" * (16 * 1024)}}, "metadata"),
        ({"completed_at": "2026-01-01T00:00:00"}, "completed_at"),
        ({"completed_at": "2026-01-01"}, "completed_at"),
        ({"completed_at": "yesterday"}, "completed_at"),
        ({"completed_at": "2026-13-01T00:00:00Z"}, "completed_at"),
        ({"completed_at": "9999-12-31T23:59:59-05:00"}, "completed_at"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": 400 * 86400 + 1}, "ttl_seconds"),
        ({"ttl_seconds": 1.5}, "ttl_seconds"),
        ({"ttl_seconds": True}, "ttl_seconds"),
        ({"ttl_seconds": "60"}, "ttl_seconds"),
        ({"ttl_seconds": 60, "expires_at": "2999-01-01T00:00:00Z"}, "ttl_seconds"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"name": "nul\x00byte"}, "name"),
        ({"metadata": {"key": "lone \ud800 surrogate"}}, "metadata"),
        ({"metadata": {"nul\x00key": 1}}, "metadata"),
        ({"version": 7}, "version"),
        ({"is_email_verified": True}, "is_email_verified"),
        ({"created_at": "2026-01-01T00:00:00Z"}, "created_at"),
        ({"deleted_at": None}, "deleted_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_field_is_a_422_naming_it_and_stores_nothing(
    client: FlaskClient, fields: dict[str, object], field: str
) -> None:
    response = client.post("/user-sessions", json=fields)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert field in field_errors(response)
    assert all(isinstance(message, str) for message in field_errors(response)[field])


def test_metadata_nested_too_deep_is_a_422(client: FlaskClient) -> None:
    nested: dict[str, object] = {}
    for _ in range(40):
        nested = {"n": nested}
    assert_problem(client.post("/user-sessions", json={"metadata": nested}), 422, "VALIDATION_FAILED")


def test_a_top_level_array_is_a_422(client: FlaskClient) -> None:
    assert_problem(client.post("/user-sessions", json=[1, 2]), 422, "VALIDATION_FAILED")


def test_nothing_is_stored_when_validation_fails(client: FlaskClient) -> None:
    chosen = str(uuid.uuid4())
    client.post("/user-sessions", json={"uuid": chosen, "name": 5})
    assert client.get(f"/user-sessions/{chosen}").status_code == 404
