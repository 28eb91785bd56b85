"""Small helpers for API tests."""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "correlation_id"}


def assert_problem(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    if response.request.method == "HEAD":
        assert response.get_data() == b""
        return {}
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    return body


def field_errors(response: TestResponse) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = response.get_json()["errors"]
    return errors
