"""What holds across every endpoint: problems, correlation ids, media types, sizes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.problems import assert_problem


def test_a_sane_correlation_id_is_echoed_everywhere(client: FlaskClient) -> None:
    for response in (
        client.post("/user-sessions", json={}, headers={"X-Correlation-ID": "req-1.a_B"}),
        client.get(f"/user-sessions/{uuid.uuid4()}", headers={"X-Correlation-ID": "req-1.a_B"}),
        client.get("/healthz", headers={"X-Correlation-ID": "req-1.a_B"}),
    ):
        assert response.headers["X-Correlation-ID"] == "req-1.a_B"
    problem = client.get(f"/user-sessions/{uuid.uuid4()}", headers={"X-Correlation-ID": "req-1.a_B"}).get_json()
    assert problem["correlation_id"] == "req-1.a_B"


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "semi;colon", "ünïcode", ""])
def test_an_insane_correlation_id_is_replaced(client: FlaskClient, sent: str) -> None:
    response = client.get("/healthz", headers={"X-Correlation-ID": sent})
    generated = response.headers["X-Correlation-ID"]
    assert generated != sent
    assert 1 <= len(generated) <= 128


def test_every_response_gets_a_fresh_correlation_id(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Correlation-ID"]
    assert client.get("/healthz").headers["X-Correlation-ID"] != first


@pytest.mark.parametrize(
    "body", [b"{", b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e999}', b"\xff\xfe", b"", b"[" * 100000]
)
def test_malformed_json_is_400(client: FlaskClient, body: bytes) -> None:
    response = client.post("/user-sessions", data=body[: 60 * 1024], content_type="application/json")
    assert_problem(response, 400, "MALFORMED_JSON")


def test_a_huge_integer_is_400_not_500(client: FlaskClient) -> None:
    response = client.post(
        "/user-sessions", data=b'{"metadata": {"n": ' + b"9" * 5000 + b"}}", content_type="application/json"
    )
    assert_problem(response, 400, "MALFORMED_JSON")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/json; charset=latin-1"])
def test_a_post_body_of_another_media_type_is_415(client: FlaskClient, content_type: str) -> None:
    response = client.post("/user-sessions", data=b"{}", content_type=content_type)
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_body_over_64_kib_is_413_and_stores_nothing(client: FlaskClient) -> None:
    chosen = str(uuid.uuid4())
    body = b'{"uuid": "' + chosen.encode() + b'", "name": "' + b"x" * (65 * 1024) + b'"}'
    assert_problem(client.post("/user-sessions", data=body, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE")
    assert client.get(f"/user-sessions/{chosen}").status_code == 404


def test_a_method_the_path_lacks_is_405_with_allow(client: FlaskClient, create_session: Any) -> None:
    created = create_session()
    response = client.put(f"/user-sessions/{created['uuid']}", json={})
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert {"GET", "HEAD", "PATCH", "DELETE"} <= allowed
    assert_problem(client.delete("/user-sessions"), 405, "METHOD_NOT_ALLOWED")
    assert_problem(client.get(f"/user-sessions/{created['uuid']}/restore"), 405, "METHOD_NOT_ALLOWED")


def test_an_unknown_path_is_a_404_problem(client: FlaskClient) -> None:
    assert_problem(client.get("/nowhere"), 404, "NOT_FOUND")


def test_problems_never_leak_internals(client: FlaskClient) -> None:
    response = client.post("/user-sessions", data=b'{"name": 5}', content_type="application/json")
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "sqlalchemy", "SELECT", "INSERT", "marshmallow"):
        assert leak not in text


def test_healthz_answers_without_io(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_the_database(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


@pytest.mark.parametrize("method", ["delete", "purge"])
def test_a_204_carries_no_body_and_no_content_type(client: FlaskClient, method: str) -> None:
    created = client.post("/user-sessions", json={}).get_json()
    query = "?purge=true" if method == "purge" else ""
    response = client.delete(f"/user-sessions/{created['uuid']}{query}")
    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers


def test_a_304_carries_no_content_type(client: FlaskClient) -> None:
    created = client.post("/user-sessions", json={}).get_json()
    response = client.get(f"/user-sessions/{created['uuid']}", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert "Content-Type" not in response.headers
