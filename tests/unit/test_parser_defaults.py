"""A request without a query string gets its query schema's defaults, as a fresh dict each time."""

from __future__ import annotations

from flask import Flask

from service.api.parser import RequestParser
from service.schemas import UserSessionListArgsSchema


def test_defaults_are_loaded_once_and_never_shared() -> None:
    parser, schema, app = RequestParser(unknown=None), UserSessionListArgsSchema(), Flask(__name__)
    with app.test_request_context("/user-sessions"):
        first = parser.parse(schema, location="query")
        first["limit"] = 1
        second = parser.parse(schema, location="query")
    with app.test_request_context("/user-sessions?limit=7"):
        asked = parser.parse(schema, location="query")
    assert second == schema.load({})
    assert second["limit"] != 1
    assert asked["limit"] == 7
