"""``/readyz`` with the cache's state, ``/metrics``, and the JSON line per request."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from service import create_app
from service.database import get_db_session
from service.extensions import db
from service.models import UserSession
from service.observability import metrics
from service.observability.requests import route_template
from tests.conftest import make_app
from tests.support.live import free_port
from tests.support.redisdb import shared_redis_url, unreachable_redis_url

ITEM_ROUTE = "/user-sessions/{user_session_uuid}"
EMAIL = "secret.person@example.org"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def log_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def app_with_settings(app: Flask, database_url: str) -> Iterator[Any]:
    made: list[Flask] = []

    def make(**settings: str) -> Flask:
        made.append(make_app(database_url, **settings))
        return made[-1]

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


# --- /healthz and /readyz ----------------------------------------------------------------


def test_healthz_is_ok(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_the_cache_disabled_without_redis(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "cache": "disabled"}


def test_readyz_reports_the_cache_ok_when_redis_answers(app_with_settings: Any) -> None:
    client = app_with_settings(REDIS_URL=shared_redis_url()).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_readyz_stays_200_when_redis_is_down(app_with_settings: Any) -> None:
    """Losing the optional cache must not pull every instance out of the load balancer."""
    client = app_with_settings(REDIS_URL=unreachable_redis_url()).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "cache": "unavailable"}
    assert "Retry-After" not in response.headers


def test_readyz_is_503_when_the_database_is_down_whatever_the_cache() -> None:
    app = create_app(
        {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
            "SECRET_KEY": "x",
            "REDIS_URL": unreachable_redis_url(),
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json() == {"status": "unavailable", "database": "unavailable", "cache": "unavailable"}


# --- /metrics ------------------------------------------------------------------------


def test_metrics_count_requests_by_route_template_method_and_status(app: Flask) -> None:
    client = app.test_client()
    labels = {"method": "GET", "route": ITEM_ROUTE, "status": "404"}
    before = sample("http_requests_total", **labels)
    histogram_before = sample("http_request_duration_seconds_count", **labels)
    for _ in range(3):
        assert client.get(f"/user-sessions/{uuid.uuid4()}").status_code == 404
    assert sample("http_requests_total", **labels) == before + 3
    assert sample("http_request_duration_seconds_count", **labels) == histogram_before + 3

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.get_data(as_text=True)
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert f'http_requests_total{{method="GET",route="{ITEM_ROUTE}",status="404"}}' in text
    assert re.search(r'http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="/user-sessions', text)


def test_raw_paths_never_become_labels(app: Flask) -> None:
    client = app.test_client()
    some_uuid = str(uuid.uuid4())
    client.get(f"/user-sessions/{some_uuid}")
    client.get(f"/no-such-page/{some_uuid}")
    client.open("/user-sessions", method="BREW")
    text = client.get("/metrics").get_data(as_text=True)
    assert some_uuid not in text
    assert 'route="unmatched"' in text
    assert 'method="OTHER"' in text


def test_database_errors_are_counted() -> None:
    app = create_app({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none", "SECRET_KEY": "x"})
    before = sample("database_errors_total", kind="unavailable")
    assert app.test_client().get(f"/user-sessions/{uuid.uuid4()}").status_code == 503
    assert sample("database_errors_total", kind="unavailable") == before + 1
    assert "database_errors_total" in app.test_client().get("/metrics").get_data(as_text=True)


def test_cache_lookups_have_a_counter_ready_for_the_cache(app: Flask) -> None:
    before = {result: sample("cache_requests_total", result=result) for result in ("hit", "miss", "error")}
    metrics.record_cache_request("hit")
    metrics.record_cache_request("hit")
    metrics.record_cache_request("miss")
    metrics.record_cache_request("error")
    assert sample("cache_requests_total", result="hit") == before["hit"] + 2
    assert sample("cache_requests_total", result="miss") == before["miss"] + 1
    assert sample("cache_requests_total", result="error") == before["error"] + 1
    assert 'cache_requests_total{result="hit"}' in app.test_client().get("/metrics").get_data(as_text=True)


@pytest.mark.parametrize(
    ("rule", "template"),
    [
        ("/user-sessions/<user_session_uuid:user_session_uuid>", ITEM_ROUTE),
        ("/user-sessions/<user_session_uuid:user_session_uuid>/restore", ITEM_ROUTE + "/restore"),
        ("/static/<path:filename>", "/static/{filename}"),
        ("/a/<b>/c/<int:d>", "/a/{b}/c/{d}"),
        ("/healthz", "/healthz"),
    ],
)
def test_route_templates_read_like_the_openapi_paths(rule: str, template: str) -> None:
    assert route_template(rule) == template


# --- one JSON line per request --------------------------------------------------------------


def test_each_request_writes_one_json_line_with_what_an_operator_needs(
    app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    client = app.test_client()
    capsys.readouterr()
    response = client.get(f"/user-sessions/{uuid.uuid4()}", headers={"X-Correlation-ID": "trace-42"})
    lines = [line for line in log_lines(capsys.readouterr().out) if line["logger"] == "service.requests"]
    assert len(lines) == 1
    line = lines[0]
    assert set(line) == {
        "time",
        "level",
        "logger",
        "message",
        "correlation_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "api_key",
        "pid",
    }
    assert line["correlation_id"] == "trace-42" == response.headers["X-Correlation-ID"]
    assert (line["method"], line["route"], line["status"]) == ("GET", ITEM_ROUTE, 404)
    assert line["level"] == "INFO"
    assert line["api_key"] is None
    assert 0 < line["duration_ms"] < 10_000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_logs_hold_no_bodies_no_query_strings_and_no_email_addresses(
    app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    client = app.test_client()
    capsys.readouterr()
    created = client.post("/user-sessions", json={"email": EMAIL, "name": "Secret Person", "metadata": {"pin": "zebu"}})
    assert created.status_code == 201
    location = created.headers["Location"]
    client.patch(location, json={"email": "not-an-address", "ip_address": "10.9.8.7"})
    client.get(f"{location}?email={EMAIL}")
    client.post("/user-sessions", data=json.dumps({"email": EMAIL})[:-3], content_type="application/json")
    output = capsys.readouterr().out
    assert log_lines(output), "nothing was logged"
    # The secrets hold letters beyond hex, so no correlation id, uuid or pid can contain one by chance.
    for secret in (EMAIL, "Secret Person", "zebu", "not-an-address", "10.9.8.7", created.get_json()["uuid"]):
        assert secret not in output


def test_database_errors_never_log_the_values_sent(app: Flask) -> None:
    """Parameters are hidden from SQLAlchemy's messages, which end up in logs and tracebacks."""
    with app.app_context():
        user_session_uuid = uuid.uuid4()
        with get_db_session() as db_session:
            db_session.execute(insert(UserSession).values(uuid=user_session_uuid, email=EMAIL, version=1))
        with pytest.raises(IntegrityError) as raised, get_db_session() as db_session:
            db_session.execute(insert(UserSession).values(uuid=user_session_uuid, email=EMAIL, version=1))
    assert EMAIL not in str(raised.value)
    assert "hidden due to hide_parameters" in str(raised.value)
