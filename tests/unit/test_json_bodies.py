"""Bodies are compact JSON, encoded by orjson, or by the standard library where orjson refuses;
stored JSON and datetimes are read and written as the standard library would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from flask import Flask, jsonify
from hypothesis import given
from hypothesis import strategies as st

from service.api.json_provider import JSONProvider
from service.json import loads
from service.schemas.fields import format_datetime


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


@pytest.mark.parametrize(
    "document",
    [
        '{"step": 3, "utm": {"source": "newsletter"}, "x": [1, 2.5, null, true, false], "ü": "ñ"}',
        '{"big": 18446744073709551616, "small": -9223372036854775809, "edge": 9223372036854775807}',
        '{"nineteen": -9999999999999999999, "twenty": 99999999999999999999}',
        '{"digits in a string": "12345678901234567890"}',
        '{"zeros": 100000000000000000000, "short runs": [123456789, 987654321012]}',
        '{"huge": 1e400, "not json": NaN}',
        '"\\ud800"',
        "[1.0, 1E2, -0.0, 0.1, 1.7976931348623157e308]",
    ],
)
def test_stored_json_reads_as_the_standard_library_reads_it(document: str) -> None:
    expected = json.loads(document)
    for form in (document, document.encode()):
        value = loads(form)
        assert repr(value) == repr(expected)  # ints stay ints, floats floats, nan nan


@given(st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31), timezones=st.one_of(st.none(), st.timezones())))
def test_a_datetime_is_written_as_isoformat_writes_it_in_utc(moment: datetime) -> None:
    in_utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    assert format_datetime(moment) == in_utc.isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def test_a_number_handed_over_as_is_is_a_type_error() -> None:
    """SQLite hands a JSON number over as a number; SQLAlchemy reads a TypeError as "take it as it is"."""
    with pytest.raises(TypeError):
        loads(1)  # type: ignore[arg-type]
