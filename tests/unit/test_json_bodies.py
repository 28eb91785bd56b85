"""Bodies are compact JSON, encoded by orjson, or by the standard library where orjson refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from flask import Flask, jsonify

from service.json import JSONProvider


@pytest.fixture
def json_app() -> Flask:
    app = Flask(__name__)
    app.json = JSONProvider(app)
    return app


@pytest.mark.parametrize(
    "value",
    [
        {"name": "Ada", "n": 1, "x": 2.5, "ok": True, "none": None, "list": [1, "two", {"three": 3}]},
        {"ü": "ñ", "emoji": "\U0001f600"},
        {"big": 2**70, "negative": -(2**64)},  # beyond 64 bits: the standard library's turn
        {1: "a key that is not a string"},
    ],
)
def test_a_body_says_what_the_standard_library_says(json_app: Flask, value: object) -> None:
    with json_app.app_context():
        body = jsonify(value).get_data()
    assert body.endswith(b"\n")
    assert b": " not in body
    assert b", " not in body
    assert json.loads(body) == json.loads(json.dumps(value))


def test_keys_keep_their_order_and_other_types_are_flasks(json_app: Flask) -> None:
    moment = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    identifier = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    with json_app.app_context():
        body = jsonify({"z": 1, "a": 2, "when": moment, "id": identifier}).get_data()
    assert body == b'{"z":1,"a":2,"when":"Fri, 27 Nov 2026 05:00:00 GMT","id":"01234567-89ab-cdef-0123-456789abcdef"}\n'


def test_debug_mode_indents(json_app: Flask) -> None:
    json_app.debug = True
    with json_app.app_context():
        assert jsonify({"a": 1}).get_data() == b'{\n  "a": 1\n}\n'
