"""DELETE (soft and purge) and POST …/restore."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.problems import assert_problem, field_errors


def url(user_session: dict[str, Any], suffix: str = "") -> str:
    return f"/user-sessions/{user_session['uuid']}{suffix}"


def test_delete_is_soft_and_bumps_the_version(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    response = client.delete(url(created))
    assert response.status_code == 204
    assert response.data == b""
    deleted = client.get(url(created, "?include_deleted=true")).get_json()
    assert deleted["deleted_at"] is not None
    assert deleted["version"] == 2


def test_deleting_twice_is_404(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    client.delete(url(created))
    assert_problem(client.delete(url(created)), 404, "USER_SESSION_NOT_FOUND")


def test_delete_honours_if_match(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert_problem(client.delete(url(created), headers={"If-Match": '"5"'}), 412, "PRECONDITION_FAILED")
    assert client.get(url(created)).status_code == 200
    assert client.delete(url(created), headers={"If-Match": '"1"'}).status_code == 204


def test_purge_erases_live_and_deleted_sessions(client: FlaskClient, create_session: Any) -> None:
    live, deleted = create_session(), create_session()
    client.delete(url(deleted))
    for user_session in (live, deleted):
        assert client.delete(url(user_session, "?purge=true")).status_code == 204
        assert client.get(url(user_session, "?include_deleted=true")).status_code == 404
        assert_problem(client.post(url(user_session, "/restore")), 404, "USER_SESSION_NOT_FOUND")


def test_purge_of_an_unknown_uuid_is_404(client: FlaskClient) -> None:
    assert_problem(client.delete(f"/user-sessions/{uuid.uuid4()}?purge=true"), 404, "USER_SESSION_NOT_FOUND")


def test_purge_honours_if_match(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert_problem(client.delete(url(created, "?purge=true"), headers={"If-Match": '"2"'}), 412, "PRECONDITION_FAILED")
    assert client.delete(url(created, "?purge=true"), headers={"If-Match": '"1"'}).status_code == 204


@pytest.mark.parametrize(("query", "parameter"), [("purge=yes", "purge"), ("purge=", "purge"), ("hard=true", "hard")])
def test_a_bad_delete_query_is_400(client: FlaskClient, create_session: Any, query: str, parameter: str) -> None:
    created = create_session()
    response = client.delete(url(created, f"?{query}"))
    assert_problem(response, 400, "INVALID_QUERY_PARAMETER")
    assert parameter in field_errors(response)
    assert client.get(url(created)).status_code == 200


def test_restore_undoes_a_soft_delete(client: FlaskClient, create_session: Any) -> None:
    created = create_session(name="back")
    client.delete(url(created))
    response = client.post(url(created, "/restore"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["deleted_at"] is None
    assert body["name"] == "back"
    assert body["version"] == 3
    assert response.headers["ETag"] == '"3"'
    assert client.get(url(created)).status_code == 200


def test_restore_clears_a_passed_expiry(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    client.patch(url(created), json={"expires_at": "2001-01-01T00:00:00Z"})
    body = client.post(url(created, "/restore")).get_json()
    assert body["expires_at"] is None
    assert client.get(url(created)).status_code == 200


def test_restore_keeps_a_future_expiry(client: FlaskClient, create_session: Any) -> None:
    created = create_session(expires_at="2999-01-01T00:00:00Z")
    client.delete(url(created))
    assert client.post(url(created, "/restore")).get_json()["expires_at"] == "2999-01-01T00:00:00.000000Z"


def test_restoring_a_live_session_is_409(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    assert_problem(client.post(url(created, "/restore")), 409, "USER_SESSION_IS_LIVE")


def test_restoring_an_unknown_session_is_404(client: FlaskClient) -> None:
    assert_problem(client.post(f"/user-sessions/{uuid.uuid4()}/restore"), 404, "USER_SESSION_NOT_FOUND")


def test_restore_honours_if_match(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    client.delete(url(created))
    assert_problem(client.post(url(created, "/restore"), headers={"If-Match": '"1"'}), 412, "PRECONDITION_FAILED")
    assert client.post(url(created, "/restore"), headers={"If-Match": '"2"'}).status_code == 200
