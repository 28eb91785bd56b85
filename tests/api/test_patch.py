"""PATCH /user-sessions/{uuid}: JSON merge patch (RFC 7396) with If-Match."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.problems import assert_problem, field_errors

MERGE_PATCH = "application/merge-patch+json"


def patch(client: FlaskClient, user_session_uuid: str, body: Any, **headers: str) -> Any:
    return client.patch(f"/user-sessions/{user_session_uuid}", json=body, headers=headers)


def test_patch_changes_only_the_fields_sent(client: FlaskClient, create_session: Any) -> None:
    created = create_session(name="Ada", email="ada@example.org")
    response = patch(client, created["uuid"], {"name": "Grace"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "Grace"
    assert body["email"] == "ada@example.org"
    assert body["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert body["updated_at"] > created["updated_at"]
    assert body["created_at"] == created["created_at"]


def test_merge_patch_media_type_is_accepted(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    response = client.patch(f"/user-sessions/{created['uuid']}", data='{"name": "x"}', content_type=MERGE_PATCH)
    assert response.status_code == 200
    assert response.get_json()["name"] == "x"


def test_null_clears_a_nullable_field(client: FlaskClient, create_session: Any) -> None:
    created = create_session(name="Ada", email="ada@example.org", completed_at="2026-01-01T00:00:00Z")
    body = patch(client, created["uuid"], {"name": None, "completed_at": None}).get_json()
    assert body["name"] is None
    assert body["completed_at"] is None
    assert body["email"] == "ada@example.org"


def test_metadata_merges_recursively_and_null_removes_keys(client: FlaskClient, create_session: Any) -> None:
    created = create_session(metadata={"a": {"b": 1, "c": 2}, "keep": [1, 2], "drop": True})
    body = patch(client, created["uuid"], {"metadata": {"a": {"b": None, "d": {"e": 3}}, "drop": None}}).get_json()
    assert body["metadata"] == {"a": {"c": 2, "d": {"e": 3}}, "keep": [1, 2]}


def test_arrays_in_metadata_are_replaced_not_merged(client: FlaskClient, create_session: Any) -> None:
    created = create_session(metadata={"list": [1, 2, 3]})
    assert patch(client, created["uuid"], {"metadata": {"list": [4]}}).get_json()["metadata"] == {"list": [4]}


def test_null_metadata_resets_it_to_an_empty_object(client: FlaskClient, create_session: Any) -> None:
    created = create_session(metadata={"a": 1})
    assert patch(client, created["uuid"], {"metadata": None}).get_json()["metadata"] == {}


def test_a_patch_that_changes_nothing_leaves_version_and_updated_at(client: FlaskClient, create_session: Any) -> None:
    created = create_session(name="Ada", metadata={"a": 1})
    for no_op in ({}, {"name": "Ada"}, {"metadata": {"a": 1}}, {"metadata": {"missing": None}}):
        body = patch(client, created["uuid"], no_op).get_json()
        assert body["version"] == 1, no_op
        assert body["updated_at"] == created["updated_at"], no_op


def test_a_json_true_is_a_change_from_one(client: FlaskClient, create_session: Any) -> None:
    created = create_session(metadata={"a": 1})
    body = patch(client, created["uuid"], {"metadata": {"a": True}}).get_json()
    assert body["metadata"] == {"a": True}
    assert body["version"] == 2


def test_ttl_seconds_on_patch_sets_expires_at(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert patch(client, created["uuid"], {"ttl_seconds": 60}).get_json()["expires_at"] is not None


def test_a_past_expires_at_on_patch_expires_the_session_at_once(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert patch(client, created["uuid"], {"expires_at": "2001-01-01T00:00:00Z"}).status_code == 200
    assert_problem(client.get(f"/user-sessions/{created['uuid']}"), 404, "USER_SESSION_NOT_FOUND")


@pytest.mark.parametrize("if_match", ['"1"', "*", '"7", "1"'])
def test_a_matching_if_match_applies_the_patch(client: FlaskClient, create_session: Any, if_match: str) -> None:
    created = create_session()
    assert patch(client, created["uuid"], {"name": "x"}, **{"If-Match": if_match}).status_code == 200


@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', '"one"', '""'])
def test_a_mismatched_if_match_is_412_and_changes_nothing(
    client: FlaskClient, create_session: Any, if_match: str
) -> None:
    created = create_session(name="before")
    assert_problem(
        patch(client, created["uuid"], {"name": "after"}, **{"If-Match": if_match}), 412, "PRECONDITION_FAILED"
    )
    assert client.get(f"/user-sessions/{created['uuid']}").get_json()["name"] == "before"


def test_the_etag_of_the_response_is_the_next_if_match(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    first = patch(client, created["uuid"], {"name": "one"}, **{"If-Match": '"1"'})
    second = patch(client, created["uuid"], {"name": "two"}, **{"If-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert second.headers["ETag"] == '"3"'


def test_patching_a_missing_or_deleted_session_is_404(client: FlaskClient, create_session: Any) -> None:
    assert_problem(patch(client, str(uuid.uuid4()), {"name": "x"}), 404, "USER_SESSION_NOT_FOUND")
    created = create_session()
    client.delete(f"/user-sessions/{created['uuid']}")
    assert_problem(patch(client, created["uuid"], {"name": "x"}), 404, "USER_SESSION_NOT_FOUND")


def test_validation_comes_before_state(client: FlaskClient) -> None:
    response = patch(client, str(uuid.uuid4()), {"name": 5})
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"uuid": str(uuid.uuid4())}, "uuid"),
        ({"version": 2}, "version"),
        ({"deleted_at": None}, "deleted_at"),
        ({"verification_attempts": 0}, "verification_attempts"),
        ({"consent_user_data": None}, "consent_user_data"),
        ({"email": "nope"}, "email"),
        ({"ttl_seconds": 10, "expires_at": "2999-01-01T00:00:00Z"}, "ttl_seconds"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"metadata": [1]}, "metadata"),
    ],
)
def test_a_bad_patch_is_a_422_naming_the_field(
    client: FlaskClient, create_session: Any, body: dict[str, Any], field: str
) -> None:
    created = create_session()
    response = patch(client, created["uuid"], body)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert field in field_errors(response)
    assert client.get(f"/user-sessions/{created['uuid']}").get_json()["version"] == 1


def test_metadata_that_grows_past_16_kib_after_merging_is_a_422(client: FlaskClient, create_session: Any) -> None:
    created = create_session(metadata={"a": "x" * 9000})
    response = patch(client, created["uuid"], {"metadata": {"b": "y" * 9000}})
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert "metadata" in field_errors(response)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json-patch+json"]
)
def test_another_media_type_is_415_with_accept_patch(
    client: FlaskClient, create_session: Any, content_type: str
) -> None:
    created = create_session()
    response = client.patch(f"/user-sessions/{created['uuid']}", data='{"name": "x"}', content_type=content_type)
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert response.headers["Accept-Patch"] == "application/merge-patch+json, application/json"


def test_a_patch_without_a_body_is_415(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert_problem(client.patch(f"/user-sessions/{created['uuid']}"), 415, "UNSUPPORTED_MEDIA_TYPE")


def verify(client: FlaskClient, user_session_uuid: str) -> None:
    code = client.post(f"/user-sessions/{user_session_uuid}/email-verification").get_json()["code"]
    check = client.post(f"/user-sessions/{user_session_uuid}/email-verification/check", json={"code": code})
    assert check.get_json() == {"verified": True}


def test_a_new_email_address_is_unverified(client: FlaskClient, create_session: Any) -> None:
    created = create_session(email="ada@example.org")
    verify(client, created["uuid"])
    body = patch(client, created["uuid"], {"email": "grace@example.org"}).get_json()
    assert body["is_email_verified"] is False
    assert body["verification_expires_at"] is None


def test_changing_only_the_case_of_the_email_keeps_it_verified(client: FlaskClient, create_session: Any) -> None:
    created = create_session(email="ada@example.org")
    verify(client, created["uuid"])
    body = patch(client, created["uuid"], {"email": "Ada@Example.org"}).get_json()
    assert body["email"] == "Ada@Example.org"
    assert body["is_email_verified"] is True
