"""A database that does not answer is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask

from service import create_app
from tests.support.live import free_port
from tests.support.problems import assert_problem


@pytest.fixture(scope="module")
def app_without_database() -> Flask:
    # Nothing listens on this port: every connection attempt is refused.
    app = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none", "SECRET_KEY": "x"})
    app.config["TESTING"] = True
    return app


def test_reads_and_writes_answer_503_with_retry_after(app_without_database: Flask) -> None:
    client = app_without_database.test_client()
    for response in (
        client.get(f"/user-sessions/{uuid.uuid4()}"),
        client.post("/user-sessions", json={}),
        client.patch(f"/user-sessions/{uuid.uuid4()}", json={"name": "x"}),
    ):
        body = assert_problem(response, 503, "DATABASE_UNAVAILABLE")
        assert response.headers["Retry-After"] == "1"
        assert "127.0.0.1" not in body["detail"]


def test_validation_still_comes_first(app_without_database: Flask) -> None:
    client = app_without_database.test_client()
    assert_problem(client.post("/user-sessions", json={"name": 5}), 422, "VALIDATION_FAILED")


def test_readyz_is_503_and_healthz_200(app_without_database: Flask) -> None:
    client = app_without_database.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["database"] == "unavailable"
    assert client.get("/healthz").status_code == 200
