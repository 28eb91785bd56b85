"""The contract as served: ``/openapi.json``, ``/openapi.yaml`` and ``/docs``.

Both documents are rendered once per app from the same dict, so ``/openapi.yaml``
is byte for byte the committed ``openapi.yaml``. ``/docs`` is Swagger UI whose
scripts and styles come from the ``flask-swagger-ui`` package and are served
here: the page loads nothing from anywhere but this service, and its
Content-Security-Policy forbids it to.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import flask
from flask import Response, current_app, url_for
from flask.views import MethodView
from werkzeug.exceptions import NotFound

from service.api.openapi import openapi_document, render_yaml
from service.api.parser import Blueprint

blp = Blueprint("contract", __name__, description="The OpenAPI document and its interactive docs.")
assets = flask.Blueprint("docs_assets", __name__, url_prefix="/docs")

YAML_MEDIA_TYPE = "application/yaml"
SWAGGER_UI_DIST = Path(str(importlib.resources.files("flask_swagger_ui") / "dist"))
SWAGGER_UI_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})
DOCS_ASSETS = Path(__file__).resolve().parent.parent / "docs"
OWN_ASSETS = frozenset({"docs.css", "docs.js"})

# The page may load and call only this origin; Swagger UI draws icons as data: URIs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

DOCS_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} {version}: API docs</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{swagger_css}">
  <link rel="stylesheet" href="{docs_css}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec_url}"></div>
  <script src="{swagger_js}"></script>
  <script src="{docs_js}"></script>
</body>
</html>
"""

TEXT_SCHEMA = {"type": "string"}
OBJECT_SCHEMA = {"type": "object"}
TEXT_SCHEMA = {"type": "string"}


def _rendered() -> dict[str, str]:
    """The document as JSON and YAML, rendered on first use and kept for the app's life."""
    cache: dict[str, str] | None = current_app.extensions.get("openapi_rendered")
    if cache is None:
        api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        document: dict[str, Any] = openapi_document(api)
        cache = {
            "json": json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            "yaml": render_yaml(document),
        }
        current_app.extensions["openapi_rendered"] = cache
    return cache


@blp.route("/openapi.json")
class OpenApiJson(MethodView):
    @blp.doc(operationId="getOpenApiJson")
    @blp.documents_head("headOpenApiJson")
    @blp.response(200, OBJECT_SCHEMA, description="The OpenAPI document, the same as `openapi.yaml`.")
    def get(self) -> Response:
        """The OpenAPI document as JSON."""
        return Response(_rendered()["json"], mimetype="application/json")


@blp.route("/openapi.yaml")
class OpenApiYaml(MethodView):
    @blp.doc(operationId="getOpenApiYaml")
    @blp.documents_head("headOpenApiYaml")
    @blp.response(
        200,
        TEXT_SCHEMA,
        content_type=YAML_MEDIA_TYPE,
        description="The OpenAPI document, byte for byte the `openapi.yaml` of the repository.",
    )
    def get(self) -> Response:
        """The OpenAPI document as YAML."""
        return Response(_rendered()["yaml"], mimetype=YAML_MEDIA_TYPE)


@blp.route("/docs")
class Docs(MethodView):
    @blp.doc(operationId="getDocs")
    @blp.documents_head("headDocs")
    @blp.response(200, TEXT_SCHEMA, content_type="text/html", description="Swagger UI; every asset is served here.")
    def get(self) -> Response:
        """Interactive API docs (Swagger UI, served by the service itself)."""
        api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        page = DOCS_PAGE.format(
            title=api.spec.title,
            version=api.spec.version,
            spec_url=url_for("contract.OpenApiJson"),
            swagger_css=url_for("docs_assets.asset", name="swagger-ui.css"),
            swagger_js=url_for("docs_assets.asset", name="swagger-ui-bundle.js"),
            docs_css=url_for("docs_assets.asset", name="docs.css"),
            docs_js=url_for("docs_assets.asset", name="docs.js"),
        )
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


@assets.route("/<name>")
def asset(name: str) -> Response:
    """Swagger UI's own files and the page's, from the installed packages."""
    if name in SWAGGER_UI_ASSETS:
        directory = SWAGGER_UI_DIST
    elif name in OWN_ASSETS:
        directory = DOCS_ASSETS
    else:
        raise NotFound()
    response = flask.send_from_directory(directory, name, max_age=3600)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
