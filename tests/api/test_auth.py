"""API keys: 401 without a valid one, 403 for a read-only key that writes,
checked before anything else; open operational endpoints need none."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from service.extensions import db
from service.security import api_keys as auth
from tests.conftest import make_app
from tests.factories import create_user_session
from tests.support.problems import assert_problem

READ_WRITE_KEY = "rw-5d1c0e9a4b7f4e2a9c3d8b6a1f0e7d2c"
READ_ONLY_KEY = "ro-8f2b6c1d9e3a4f7b0c5d2e8a6b1f9c3d"
# The contract's open endpoints, whatever methods the spec documents for them.
OPEN_SPEC_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/openapi.yaml", "/docs"}
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json")
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


@pytest.fixture(scope="module")
def secured_app(database_url: str) -> Iterator[Flask]:
    secured = make_app(database_url, API_KEYS=f"{READ_WRITE_KEY}, {READ_ONLY_KEY}:ro")
    yield secured
    with secured.app_context():
        db.engine.dispose()


@pytest.fixture
def secured(secured_app: Flask, app: Flask) -> FlaskClient:
    """A client of the app with keys; ``app`` is there to empty the tables after the test."""
    return secured_app.test_client()


def rw(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {READ_WRITE_KEY}", **headers}


def ro(**headers: str) -> dict[str, str]:
    return {"X-API-Key": READ_ONLY_KEY, **headers}


def create(client: FlaskClient) -> dict[str, Any]:
    return create_user_session(client, rw(), name="Ada")


# --- 401 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/user-sessions/{uuid}"),
        ("HEAD", "/user-sessions/{uuid}"),
        ("PATCH", "/user-sessions/{uuid}"),
        ("DELETE", "/user-sessions/{uuid}"),
        ("POST", "/user-sessions/{uuid}/restore"),
        ("POST", "/user-sessions"),
    ],
)
def test_without_a_key_every_user_sessions_request_is_401_with_www_authenticate(
    secured: FlaskClient, method: str, path: str
) -> None:
    user_session = create(secured)
    response = secured.open(path.format(uuid=user_session["uuid"]), method=method, json={})
    assert_problem(response, 401, "AUTHENTICATION_REQUIRED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-key-0000000000000000000000"},
        {"X-API-Key": "wrong-key-0000000000000000000000"},
        {"Authorization": f"Basic {READ_WRITE_KEY}"},
        {"Authorization": READ_WRITE_KEY},
        {"Authorization": "Bearer "},
        {"X-API-Key": ""},
        {"X-API-Key": f"{READ_ONLY_KEY}:ro"},  # the suffix lives in the configuration only
        {"X-API-Key": READ_WRITE_KEY[:-1]},
        {"X-API-Key": READ_WRITE_KEY + "x"},
        {"Authorization": "Bearer wrong-key", "X-API-Key": READ_WRITE_KEY},  # a bad bearer is not rescued
    ],
)
def test_a_wrong_or_malformed_key_is_401(secured: FlaskClient, headers: dict[str, str]) -> None:
    response = secured.get(f"/user-sessions/{uuid.uuid4()}", headers=headers)
    assert_problem(response, 401, "AUTHENTICATION_REQUIRED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_bearer_scheme_is_case_insensitive_and_x_api_key_works_too(secured: FlaskClient) -> None:
    user_session = create(secured)
    url = f"/user-sessions/{user_session['uuid']}"
    for headers in (
        {"Authorization": f"bearer {READ_WRITE_KEY}"},
        {"Authorization": f"BEARER   {READ_WRITE_KEY}"},
        {"X-API-Key": READ_WRITE_KEY},
        {"X-API-Key": READ_ONLY_KEY},
        {"Authorization": f"Bearer {READ_ONLY_KEY}"},
    ):
        assert secured.get(url, headers=headers).status_code == 200, headers


# --- order of checks: authentication before validation and state -------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/user-sessions", {"json": {"name": 5, "unknown": 1}}),
        ("POST", "/user-sessions", {"data": "{not json", "content_type": "application/json"}),
        ("POST", "/user-sessions", {"data": "x", "content_type": "text/plain"}),
        ("POST", "/user-sessions", {"data": "x" * (65 * 1024), "content_type": "application/json"}),
        ("GET", "/user-sessions/not-a-uuid", {}),
        ("GET", "/user-sessions/{uuid}?bogus=1", {}),
        ("PATCH", "/user-sessions/{uuid}", {"json": {"version": 9}, "headers": {"If-Match": '"99"'}}),
        ("PUT", "/user-sessions/{uuid}", {"json": {}}),
        ("GET", "/user-sessions/{uuid}/no-such-thing", {}),
    ],
)
def test_authentication_comes_before_validation_and_state(
    secured: FlaskClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    path = path.format(uuid=uuid.uuid4())
    assert_problem(secured.open(path, method=method, **kwargs), 401, "AUTHENTICATION_REQUIRED")
    if method != "GET":
        headers = {**kwargs.pop("headers", {}), **ro()}
        assert_problem(secured.open(path, method=method, headers=headers, **kwargs), 403, "READ_ONLY_API_KEY")


# --- 403 ---------------------------------------------------------------------


def test_a_read_only_key_reads_but_every_write_is_403(secured: FlaskClient) -> None:
    user_session = create(secured)
    url = f"/user-sessions/{user_session['uuid']}"
    assert secured.get(url, headers=ro()).status_code == 200
    assert secured.head(url, headers=ro()).status_code == 200
    assert secured.get("/user-sessions/" + str(uuid.uuid4()), headers=ro()).status_code == 404
    # OPTIONS is not served (405 with Allow), for a read-only key as for any: not a 403.
    assert secured.options(url, headers=ro()).status_code == 405

    for method, path, body in (
        ("POST", "/user-sessions", {}),
        ("PATCH", url, {"name": "Grace"}),
        ("DELETE", url, None),
        ("DELETE", url + "?purge=true", None),
        ("POST", url + "/restore", None),
    ):
        response = secured.open(path, method=method, json=body, headers=ro())
        assert_problem(response, 403, "READ_ONLY_API_KEY")
        assert "WWW-Authenticate" not in response.headers

    unchanged = secured.get(url, headers=rw()).get_json()
    assert unchanged["name"] == "Ada"
    assert unchanged["version"] == 1


def test_a_read_write_key_does_everything(secured: FlaskClient) -> None:
    user_session = create(secured)
    url = f"/user-sessions/{user_session['uuid']}"
    patch = secured.patch(url, json={"name": "Grace"}, headers=rw())
    assert patch.status_code == 200
    assert secured.delete(url, headers=rw(**{"If-Match": patch.headers["ETag"]})).status_code == 204
    assert secured.post(url + "/restore", headers=rw()).status_code == 200
    assert secured.delete(url + "?purge=true", headers=rw()).status_code == 204


# --- open endpoints ------------------------------------------------------------


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_operational_endpoints_are_open(secured: FlaskClient, path: str) -> None:
    assert secured.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/", "/admin", "/user-sessions-export", "/healthz/../user-sessions"])
def test_anything_that_is_not_open_needs_a_key_even_where_nothing_is_served(secured: FlaskClient, path: str) -> None:
    assert_problem(secured.get(path), 401, "AUTHENTICATION_REQUIRED")


def test_every_operation_of_the_spec_needs_a_key_unless_it_is_open(secured: FlaskClient) -> None:
    """Walks the served OpenAPI document, so a new route cannot forget authentication."""
    spec = secured.get("/openapi.json").get_json()
    walked: set[tuple[str, str]] = set()
    for template, operations in spec["paths"].items():
        path = template
        for parameter in {part.split("}")[0] for part in template.split("{")[1:]}:
            path = path.replace("{" + parameter + "}", str(uuid.uuid4()))
        for method in operations:
            if method not in HTTP_METHODS:
                continue
            walked.add((template, method))
            response = secured.open(path, method=method.upper(), json={})
            if template in OPEN_SPEC_PATHS:
                assert response.status_code not in (401, 403), (method, template)
            else:
                assert response.status_code == 401, (method, template, response.status_code)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                if method not in ("get", "head", "options"):
                    denied = secured.open(path, method=method.upper(), json={}, headers=ro())
                    assert denied.status_code == 403, (method, template, denied.status_code)
    assert ("/user-sessions", "post") in walked
    assert ("/user-sessions/{user_session_uuid}", "patch") in walked
    assert {("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get")} <= walked


# --- without keys -------------------------------------------------------------------


def test_without_configured_keys_the_service_is_open_and_callers_are_anonymous(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/user-sessions", json={}).status_code == 201
    with app.test_request_context("/user-sessions", headers={"X-API-Key": READ_WRITE_KEY}):
        app.preprocess_request()
        assert auth.current_key_identity() == "anonymous"


# --- identity and secrecy ---------------------------------------------------------------


def test_the_key_identity_is_the_fingerprint_of_the_key_sent(secured_app: Flask, app: Flask) -> None:
    for key in (READ_WRITE_KEY, READ_ONLY_KEY):
        with secured_app.test_request_context("/user-sessions", headers={"X-API-Key": key}):
            secured_app.preprocess_request()
            assert auth.current_key_identity() == auth.fingerprint(key)
            assert g.api_key_fingerprint == auth.fingerprint(key)
    assert len(auth.fingerprint(READ_WRITE_KEY)) == 16
    assert auth.fingerprint(READ_WRITE_KEY) != auth.fingerprint(READ_ONLY_KEY)
    assert READ_WRITE_KEY not in auth.fingerprint(READ_WRITE_KEY)


def test_keys_never_reach_the_logs_only_their_fingerprints(
    secured: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    create(secured)
    secured.get(f"/user-sessions/{uuid.uuid4()}", headers={"X-API-Key": "a-wrong-key-that-must-not-be-logged"})
    secured.post("/user-sessions", json={}, headers=ro())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    requests_logged = [line for line in lines if line["logger"] == "service.requests"]
    assert [line["api_key"] for line in requests_logged] == [
        auth.fingerprint(READ_WRITE_KEY),
        None,
        auth.fingerprint(READ_ONLY_KEY),
    ]
    text = json.dumps(lines)
    for secret in (READ_WRITE_KEY, READ_ONLY_KEY, "a-wrong-key-that-must-not-be-logged"):
        assert secret not in text


def test_the_comparison_tries_every_key_whichever_matches() -> None:
    """Constant time: no early exit, so the time taken does not tell which key matched."""
    keys = auth.ApiKeys({"first-key": True, "second-key": False, "third-key": True})
    compared: list[bytes] = []
    original = auth.hmac.compare_digest

    def counting(left: bytes, right: bytes) -> bool:
        compared.append(left)
        return original(left, right)

    auth.hmac.compare_digest = counting  # type: ignore[assignment]
    try:
        for presented, expected in (
            ("first-key", (auth.fingerprint("first-key"), True)),
            ("second-key", (auth.fingerprint("second-key"), False)),
            ("nope", None),
        ):
            compared.clear()
            assert keys.identify(presented) == expected
            assert len(compared) == 3
    finally:
        auth.hmac.compare_digest = original
