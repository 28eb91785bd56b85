"""What readers of openapi.yaml other than this service's own tools need: YAML
1.2 types, the stable codes as an enum, every method the server answers, and
the limits it keeps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from service import create_app
from service.api.openapi import render_yaml
from service.api.problems import stable_codes
from service.errors import ServiceError

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi.yaml"
YAML_12_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def spec_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('spec') / 'spec.sqlite3'}"})


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


def test_no_string_reads_as_a_number_to_a_yaml_12_reader(document: dict[str, Any]) -> None:
    text = SPEC_FILE.read_text()
    assert "example: '042917'" in text
    for value in strings(document):
        if YAML_12_NUMBER.fullmatch(value):
            assert f": {value}\n" not in text and f"- {value}\n" not in text, value


def test_render_yaml_quotes_what_yaml_12_would_read_as_a_number() -> None:
    assert render_yaml({"a": "0123", "b": "1.50", "c": "1e3", "d": "text", "e": 7}) == (
        "a: '0123'\nb: '1.50'\nc: '1e3'\nd: text\ne: 7\n"
    )


def test_a_problems_code_is_one_of_the_stable_codes(document: dict[str, Any]) -> None:
    codes = document["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert codes == stable_codes()
    assert {"USER_SESSION_NOT_FOUND", "VERIFICATION_CODE_INCORRECT", "IDEMPOTENCY_KEY_IN_USE"} <= set(codes)
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        error = pending.pop()
        assert error.code in codes
        pending.extend(error.__subclasses__())


def test_the_yaml_document_is_text(document: dict[str, Any]) -> None:
    response = document["paths"]["/openapi.yaml"]["get"]["responses"]["200"]
    assert response["content"]["application/yaml"]["schema"] == {"type": "string"}


def test_every_method_the_server_answers_is_documented(spec_app: Flask, document: dict[str, Any]) -> None:
    for rule in spec_app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/docs/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        if path not in document["paths"]:
            continue
        documented = {method.upper() for method in document["paths"][path]}
        assert (rule.methods or set()) <= documented, (path, rule.methods, documented)
    assert "head" in document["paths"]["/user-sessions"]


def test_options_is_a_405_with_allow(spec_app: Flask) -> None:
    response = spec_app.test_client().options("/user-sessions")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}


def test_ttl_seconds_beside_expires_at_is_excluded_by_the_schema(document: dict[str, Any]) -> None:
    for name in ("UserSessionCreate", "UserSessionPatch"):
        assert document["components"]["schemas"][name]["not"] == {"required": ["ttl_seconds", "expires_at"]}


def test_retry_after_is_optional_on_the_code_issues_429(document: dict[str, Any]) -> None:
    issue = document["paths"]["/user-sessions/{user_session_uuid}/email-verification"]["post"]
    assert issue["responses"]["429"]["headers"]["Retry-After"]["required"] is False


def test_the_limits_are_stated(document: dict[str, Any]) -> None:
    description = document["info"]["description"]
    for limit in ("64 KiB", "16 KiB", "10 in one listing", "8190 bytes", "100 fields", "2048 characters"):
        assert limit in description
