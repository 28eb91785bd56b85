"""Bugs schemathesis found, pinned so they stay fixed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient


@pytest.mark.parametrize("if_match", ['""', 'W/"x", ""', '"", "1"'])
def test_an_empty_entity_tag_in_if_match_is_a_precondition_failure_not_a_crash(
    client: FlaskClient, create_session: Any, if_match: str
) -> None:
    user_session = create_session()
    response = client.patch(
        f"/user-sessions/{user_session['uuid']}",
        json={"name": "x"},
        headers={"If-Match": if_match},
    )
    if if_match == '"", "1"':
        assert response.status_code == 200
    else:
        assert response.status_code == 412
        assert response.get_json()["code"] == "PRECONDITION_FAILED"


def test_an_empty_entity_tag_in_if_match_fails_restore_and_delete(client: FlaskClient, create_session: Any) -> None:
    user_session = create_session()
    path = f"/user-sessions/{user_session['uuid']}"
    assert client.delete(path, headers={"If-Match": '""'}).status_code == 412
    assert client.delete(path).status_code == 204
    assert client.post(f"{path}/restore", headers={"If-Match": '""'}).status_code == 412


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("0081-09-19T01:03:26-20:45", "0081-09-19T21:48:26.000000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("0999-12-31T23:59:59.5+00:00", "0999-12-31T23:59:59.500000Z"),
    ],
)
def test_datetimes_before_year_1000_come_back_with_four_digit_years(
    client: FlaskClient, sent: str, answered: str
) -> None:
    response = client.post("/user-sessions", json={"completed_at": sent})
    assert response.status_code == 201
    assert response.get_json()["completed_at"] == answered
    again = client.get(response.headers["Location"])
    assert again.get_json()["completed_at"] == answered


@pytest.mark.parametrize(("sent", "seconds"), [(60, 60), (60.0, 60), (1e3, 1000)])
def test_ttl_seconds_takes_any_json_number_without_a_fraction(client: FlaskClient, sent: Any, seconds: int) -> None:
    response = client.post("/user-sessions", json={"ttl_seconds": sent})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    created = datetime.fromisoformat(body["created_at"])
    expires = datetime.fromisoformat(body["expires_at"])
    assert abs((expires - created).total_seconds() - seconds) < 5


@pytest.mark.parametrize("sent", [60.5, True, "60", 0.0, 1e300])
def test_ttl_seconds_rejects_fractions_booleans_strings_and_out_of_range_numbers(
    client: FlaskClient, sent: Any
) -> None:
    response = client.patch("/user-sessions/00000000-0000-4000-8000-000000000000", json={"ttl_seconds": sent})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["ttl_seconds"]
