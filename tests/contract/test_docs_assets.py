"""``/docs`` and its assets, served by the service itself from installed packages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app


@pytest.fixture(scope="module")
def docs_client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    path: Path = tmp_path_factory.mktemp("docs") / "unused.sqlite3"
    app: Flask = create_app({"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "docs-test"})
    return app.test_client()


def test_the_page_loads_only_its_own_scripts_and_styles(docs_client: FlaskClient) -> None:
    response = docs_client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert referenced == [
        "data:,",
        "/docs/swagger-ui.css",
        "/docs/docs.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/docs.js",
    ]
    assert 'data-spec-url="/openapi.json"' in page
    assert "<script>" not in page  # no inline script: the policy forbids it
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy


@pytest.mark.parametrize(
    ("name", "mimetype", "marker"),
    [
        ("swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"),
        ("swagger-ui.css", "text/css", ".swagger-ui"),
        ("docs.js", "text/javascript", "validatorUrl: null"),
        ("docs.css", "text/css", "box-sizing"),
    ],
)
def test_assets_come_from_the_installed_packages(
    docs_client: FlaskClient, name: str, mimetype: str, marker: str
) -> None:
    response = docs_client.get(f"/docs/{name}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert marker in response.get_data(as_text=True)
    response.close()


@pytest.mark.parametrize("name", ["index.html", "swagger-initializer.js", "..%2Fopenapi.py", "oauth2-redirect.html"])
def test_nothing_else_is_served_under_docs(docs_client: FlaskClient, name: str) -> None:
    response = docs_client.get(f"/docs/{name}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
