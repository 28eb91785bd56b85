"""Bodies the service refuses in its own words: repeated keys, a byte order
mark, over-long numbers, and bodies over the limit however they are sent."""

from __future__ import annotations

import io
import json

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.problems import assert_problem

LIMIT = 64 * 1024


def post_chunked(client: FlaskClient, body: bytes) -> TestResponse:
    """A body without Content-Length, as a server that decodes chunked bodies hands it on."""
    return client.post(
        "/user-sessions",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )


def count(client: FlaskClient) -> int:
    return len(client.get("/user-sessions?limit=500&deleted=include").get_json()["items"])


def test_a_chunked_body_over_the_limit_is_a_413_and_nothing_is_stored(client: FlaskClient) -> None:
    body = json.dumps({"metadata": {"pad": "x" * LIMIT}}).encode()
    response = post_chunked(client, body)
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert count(client) == 0


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(client: FlaskClient) -> None:
    body = b'{"name": "' + b"x" * (LIMIT - 12) + b'"}'
    assert len(body) == LIMIT
    response = post_chunked(client, body)
    # Read whole: the name is too long for the schema (a 422), not cut into broken JSON (a 400).
    assert_problem(response, 422, "VALIDATION_FAILED")


def test_a_small_chunked_body_creates(client: FlaskClient) -> None:
    response = post_chunked(client, b'{"name": "Ada"}')
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"name": "a", "name": "b"}', 'the key "name" appears twice in one object'),
        (b'{"metadata": {"k": 1, "k": 1}}', 'the key "k" appears twice in one object'),
        (b'\xef\xbb\xbf{"name": "a"}', "byte order mark"),
        (b'{"metadata": {"n": ' + b"1" * 5000 + b"}}", "a number has too many digits"),
        (b'{"name": ', "goes wrong at line 1, column 10"),
    ],
)
def test_a_malformed_body_is_a_400_in_the_services_words(client: FlaskClient, body: bytes, detail: str) -> None:
    response = client.post("/user-sessions", data=body, content_type="application/json")
    problem = assert_problem(response, 400, "MALFORMED_JSON")
    assert detail in problem["detail"]
    for python_words in ("sys.set_int_max_str_digits", "utf-8-sig", "Expecting", "Extra data"):
        assert python_words not in problem["detail"]
    assert count(client) == 0


def test_the_413_says_the_limit_in_the_services_words(client: FlaskClient) -> None:
    response = client.post("/user-sessions", data=b"{" + b" " * LIMIT + b"}", content_type="application/json")
    problem = assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert problem["detail"] == "The request body is larger than the 64 KiB allowed here."


@pytest.mark.parametrize("method", ["put", "trace"])
def test_a_framework_refusal_is_in_the_services_words(client: FlaskClient, method: str) -> None:
    response = client.open("/user-sessions", method=method.upper())
    problem = assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert problem["detail"] == "This URL does not support this method; see the Allow header."
