"""A query string seen lately is not parsed again; its result is a fresh dict each time."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from service.api import parser as parser_module
from service.api.parser import RequestParser
from service.schemas.user_sessions import UserSessionListArgsSchema


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The query strings webargs itself parsed."""
    seen: list[str] = []
    parse = FlaskParser.parse

    def counted(self: FlaskParser, *args: Any, **kwargs: Any) -> Any:
        from flask import request

        seen.append(request.query_string.decode())
        return parse(self, *args, **kwargs)

    monkeypatch.setattr(FlaskParser, "parse", counted)
    return seen


def parse(parser: RequestParser, schema: UserSessionListArgsSchema, url: str) -> Any:
    with Flask(__name__).test_request_context(url):
        return parser.parse(schema, location="query")


def test_a_query_is_parsed_once_and_its_result_never_shared(parses: list[str]) -> None:
    parser, schema = RequestParser(unknown=None), UserSessionListArgsSchema()
    first = parse(parser, schema, "/user-sessions")
    first["limit"] = 1
    second = parse(parser, schema, "/user-sessions")
    asked = parse(parser, schema, "/user-sessions?limit=7&metadata.channel=web")
    again = parse(parser, schema, "/user-sessions?limit=7&metadata.channel=web")
    assert second == schema.load({})
    assert (asked["limit"], asked["filters"].metadata) == (7, (("channel", "web"),))
    assert again == asked
    assert again is not asked
    assert parses == ["", "limit=7&metadata.channel=web"]


def test_a_query_that_fails_is_parsed_again_each_time(parses: list[str]) -> None:
    parser, schema = RequestParser(unknown=None), UserSessionListArgsSchema()
    for _ in range(2):
        with pytest.raises(HTTPException):
            parse(parser, schema, "/user-sessions?limit=0")
    assert parses == ["limit=0", "limit=0"]


def test_long_queries_are_not_kept_and_the_kept_ones_are_bounded(
    parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parser_module, "_PARSED_QUERIES", 3)
    parser, schema = RequestParser(unknown=None), UserSessionListArgsSchema()
    long_query = "limit=5&metadata.note=" + "a" * parser_module._PARSED_QUERY_MAX_BYTES
    for _ in range(2):
        parse(parser, schema, f"/user-sessions?{long_query}")
    for limit in range(1, 6):
        parse(parser, schema, f"/user-sessions?limit={limit}")
    parse(parser, schema, "/user-sessions?limit=1")  # the oldest kept went first
    parse(parser, schema, "/user-sessions?limit=5")  # still kept
    assert parses == [long_query, long_query, *(f"limit={limit}" for limit in range(1, 6)), "limit=1"]
