"""GET and HEAD /user-sessions/{uuid}."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.problems import assert_problem, field_errors


def test_get_returns_the_session_with_its_etag(client: FlaskClient, create_session: Any) -> None:
    created = create_session(name="Ada")
    response = client.get(f"/user-sessions/{created['uuid']}")
    assert response.status_code == 200
    assert response.get_json() == created
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["Vary"] == "Authorization, X-API-Key"


def test_upper_case_uuids_are_accepted(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert client.get(f"/user-sessions/{created['uuid'].upper()}").get_json()["uuid"] == created["uuid"]


@pytest.mark.parametrize("if_none_match", ['"1"', 'W/"1"', '"9", "1"', "*"])
def test_a_matching_if_none_match_is_304_without_a_body(
    client: FlaskClient, create_session: Any, if_none_match: str
) -> None:
    created = create_session()
    response = client.get(f"/user-sessions/{created['uuid']}", headers={"If-None-Match": if_none_match})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == '"1"'


def test_a_stale_if_none_match_gets_the_representation(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    client.patch(f"/user-sessions/{created['uuid']}", json={"name": "changed"})
    response = client.get(f"/user-sessions/{created['uuid']}", headers={"If-None-Match": '"1"'})
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'


def test_head_answers_200_or_404_without_a_body(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    found = client.head(f"/user-sessions/{created['uuid']}")
    assert found.status_code == 200
    assert found.data == b""
    assert found.headers["ETag"] == '"1"'
    missing = client.head(f"/user-sessions/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.data == b""


def test_a_missing_session_is_404(client: FlaskClient) -> None:
    assert_problem(client.get(f"/user-sessions/{uuid.uuid4()}"), 404, "USER_SESSION_NOT_FOUND")


@pytest.mark.parametrize("segment", ["not-a-uuid", "1234", "0b6f" * 9, "{0b6f0b6f-0b6f-0b6f-0b6f-0b6f0b6f0b6f}"])
def test_a_malformed_uuid_in_the_path_is_404(client: FlaskClient, segment: str) -> None:
    assert_problem(client.get(f"/user-sessions/{segment}"), 404, "USER_SESSION_NOT_FOUND")
    assert_problem(client.patch(f"/user-sessions/{segment}", json={}), 404, "USER_SESSION_NOT_FOUND")
    assert_problem(client.post(f"/user-sessions/{segment}/restore"), 404, "USER_SESSION_NOT_FOUND")


def test_deleted_sessions_are_404_unless_included(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    client.delete(f"/user-sessions/{created['uuid']}")
    assert_problem(client.get(f"/user-sessions/{created['uuid']}"), 404, "USER_SESSION_NOT_FOUND")
    assert client.head(f"/user-sessions/{created['uuid']}").status_code == 404
    included = client.get(f"/user-sessions/{created['uuid']}?include_deleted=true")
    assert included.status_code == 200
    assert included.get_json()["deleted_at"] is not None
    assert client.head(f"/user-sessions/{created['uuid']}?include_deleted=true").status_code == 200
    assert client.get(f"/user-sessions/{created['uuid']}?include_deleted=false").status_code == 404


def test_expired_sessions_are_404_unless_included(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    client.patch(f"/user-sessions/{created['uuid']}", json={"expires_at": "2001-01-01T00:00:00Z"})
    assert_problem(client.get(f"/user-sessions/{created['uuid']}"), 404, "USER_SESSION_NOT_FOUND")
    assert client.get(f"/user-sessions/{created['uuid']}?include_deleted=true").status_code == 200


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("include_deleted=yes", "include_deleted"), ("include_deleted=1", "include_deleted"), ("foo=bar", "foo")],
)
def test_a_bad_query_parameter_is_a_400_naming_it(
    client: FlaskClient, create_session: Any, query: str, parameter: str
) -> None:
    created = create_session()
    response = client.get(f"/user-sessions/{created['uuid']}?{query}")
    assert_problem(response, 400, "INVALID_QUERY_PARAMETER")
    assert parameter in field_errors(response)
