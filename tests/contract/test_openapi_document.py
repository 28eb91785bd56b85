"""``openapi.yaml``: generated from the code, committed, served, complete and valid.

When a test here fails after a change to the routes or schemas, run
``make openapi`` and commit the new ``openapi.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from service import create_app
from service.api.openapi import openapi_document, render_yaml
from service.api.openapi.components import IDEMPOTENCY_RETENTION
from service.models import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH
from service.schemas.user_sessions import TTL_MAX_SECONDS, TTL_MIN_SECONDS
from tests.support.live import PROJECT_ROOT

COMMITTED = PROJECT_ROOT / "openapi.yaml"
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")

# Every row of the contract's endpoint table, HEAD and the operational endpoints included.
CONTRACT_OPERATIONS = {
    ("post", "/user-sessions"): "createUserSession",
    ("get", "/user-sessions/{user_session_uuid}"): "getUserSession",
    ("head", "/user-sessions/{user_session_uuid}"): "headUserSession",
    ("patch", "/user-sessions/{user_session_uuid}"): "updateUserSession",
    ("delete", "/user-sessions/{user_session_uuid}"): "deleteUserSession",
    ("post", "/user-sessions/{user_session_uuid}/restore"): "restoreUserSession",
    ("get", "/healthz"): "getHealth",
    ("get", "/readyz"): "getReadiness",
    ("get", "/openapi.json"): "getOpenApiJson",
    ("get", "/openapi.yaml"): "getOpenApiYaml",
    ("get", "/docs"): "getDocs",
    ("post", "/user-sessions/{user_session_uuid}/email-verification"): "issueEmailVerification",
    ("post", "/user-sessions/{user_session_uuid}/email-verification/check"): "checkEmailVerification",
    ("get", "/metrics"): "getMetrics",
    ("get", "/user-sessions"): "listUserSessions",
    ("post", "/user-sessions/{user_session_uuid}/items"): "appendConversationItems",
    ("get", "/user-sessions/{user_session_uuid}/items"): "listConversationItems",
    ("head", "/user-sessions/{user_session_uuid}/items"): "headConversationItems",
    ("delete", "/user-sessions/{user_session_uuid}/items"): "clearConversationItems",
    ("post", "/user-sessions/{user_session_uuid}/items/pop"): "popConversationItem",
    ("get", "/user-sessions/{user_session_uuid}/items/{item_id}"): "getConversationItem",
    ("head", "/user-sessions/{user_session_uuid}/items/{item_id}"): "headConversationItem",
    ("delete", "/user-sessions/{user_session_uuid}/items/{item_id}"): "deleteConversationItem",
}


@pytest.fixture(scope="module")
def spec_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """An app whose database is never touched: the document needs none."""
    path = tmp_path_factory.mktemp("spec") / "unused.sqlite3"
    return create_app({"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "spec-test"})


@pytest.fixture(scope="module")
def document(spec_app: Flask) -> dict[str, Any]:
    api = spec_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    return openapi_document(api)


@pytest.fixture
def spec_client(spec_app: Flask) -> FlaskClient:
    return spec_app.test_client()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = document["components"][kind][name]
    return node


def test_the_committed_file_is_what_the_code_generates(document: dict[str, Any]) -> None:
    assert COMMITTED.read_text() == render_yaml(document), "openapi.yaml is stale: run `make openapi` and commit it"


def test_the_file_has_no_yaml_anchors_or_python_tags() -> None:
    text = COMMITTED.read_text()
    assert "&id" not in text
    assert "!!python" not in text


def test_openapi_yaml_serves_the_committed_file_byte_for_byte(spec_client: FlaskClient) -> None:
    response = spec_client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.get_data(as_text=True) == COMMITTED.read_text()
    assert response.headers["X-Correlation-ID"]


def test_openapi_json_serves_the_same_document(spec_client: FlaskClient) -> None:
    response = spec_client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == yaml.safe_load(COMMITTED.read_text())


def test_openapi_spec_validator_accepts_it() -> None:
    validate(yaml.safe_load(COMMITTED.read_text()))


def test_every_contract_operation_is_documented_with_its_stable_operation_id(document: dict[str, Any]) -> None:
    documented = {(method, path): operation.get("operationId") for method, path, operation in operations(document)}
    for key, operation_id in CONTRACT_OPERATIONS.items():
        assert documented.get(key) == operation_id, key


def test_every_operation_has_a_unique_operation_id(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in operations(document)]
    assert None not in ids
    assert len(ids) == len(set(ids))


def test_no_operation_hides_its_statuses_behind_a_default_response(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert "default" not in operation["responses"], (method, path)


def test_every_error_is_a_problem_and_every_response_carries_the_correlation_id(document: dict[str, Any]) -> None:
    server_refusal = {"$ref": "#/components/responses/ServerRefusal"}
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if response == server_refusal:  # gunicorn's own, before the service: HTML, no correlation id
                assert status in ("414", "431"), (method, path, status)
                continue
            response = resolve(document, response)
            assert "X-Correlation-ID" in response["headers"], (method, path, status)
            if int(status) >= 400 and not (path == "/readyz" and status == "503"):
                assert method == "head" or list(response["content"]) == ["application/problem+json"], (path, status)


def test_every_operation_accepts_a_correlation_id(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        names = {resolve(document, parameter)["name"] for parameter in operation["parameters"]}
        assert "X-Correlation-ID" in names, (method, path)


def statuses(document: dict[str, Any], method: str, path: str) -> set[str]:
    return set(document["paths"][path][method]["responses"])


def test_each_session_operation_lists_the_statuses_the_contract_gives_it(document: dict[str, Any]) -> None:
    item = "/user-sessions/{user_session_uuid}"
    # 414 and 431: gunicorn's own refusals (ServerRefusal), on every operation.
    common = {"400", "401", "414", "429", "431", "500", "503"}
    body = {"413", "415", "422"}
    assert statuses(document, "post", "/user-sessions") == common | body | {"201", "403", "409"}
    assert statuses(document, "get", item) == common | {"200", "304", "404"}
    assert statuses(document, "head", item) == common | {"200", "304", "404"}
    assert statuses(document, "patch", item) == common | body | {"200", "403", "404", "409", "412"}
    assert statuses(document, "delete", item) == common | {"204", "403", "404", "409", "412"}
    assert statuses(document, "post", item + "/restore") == common | {"200", "403", "404", "409", "412", "422"}
    assert statuses(document, "get", "/readyz") == {"200", "414", "431", "500", "503"}


def test_conditional_and_location_headers_are_where_the_contract_puts_them(document: dict[str, Any]) -> None:
    item = document["paths"]["/user-sessions/{user_session_uuid}"]

    def params(operation: dict[str, Any]) -> set[str]:
        return {resolve(document, parameter)["name"] for parameter in operation["parameters"]}

    created = document["paths"]["/user-sessions"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(created)
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    assert "ETag" in item["get"]["responses"]["304"]["headers"]
    assert "If-None-Match" in params(item["get"])
    for method in ("patch", "delete"):
        assert "If-Match" in params(item[method])
    restore = document["paths"]["/user-sessions/{user_session_uuid}/restore"]["post"]
    assert {"If-Match", "Idempotency-Key"} <= params(restore)
    assert "Idempotency-Key" in params(document["paths"]["/user-sessions"]["post"])
    assert "Retry-After" in item["get"]["responses"]["503"]["headers"]
    assert "WWW-Authenticate" in item["get"]["responses"]["401"]["headers"]
    assert "Accept-Patch" in item["patch"]["responses"]["415"]["headers"]


def test_head_is_get_without_bodies(document: dict[str, Any]) -> None:
    item = document["paths"]["/user-sessions/{user_session_uuid}"]
    assert item["head"]["parameters"] == item["get"]["parameters"]
    assert set(item["head"]["responses"]) == set(item["get"]["responses"])
    assert all("content" not in response for response in item["head"]["responses"].values())


def test_patch_takes_merge_patch_and_plain_json(document: dict[str, Any]) -> None:
    content = document["paths"]["/user-sessions/{user_session_uuid}"]["patch"]["requestBody"]["content"]
    assert set(content) == {"application/merge-patch+json", "application/json"}


def test_request_schemas_reject_unknown_fields_and_match_the_validators(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("UserSessionCreate", "UserSessionPatch"):
        schema = schemas[name]
        assert schema["additionalProperties"] is False
        properties = schema["properties"]
        assert properties["name"]["maxLength"] == NAME_MAX_LENGTH
        assert properties["email"]["maxLength"] == EMAIL_MAX_LENGTH
        assert properties["email"]["format"] == "email"
        assert properties["ttl_seconds"]["minimum"] == TTL_MIN_SECONDS
        assert properties["ttl_seconds"]["maximum"] == TTL_MAX_SECONDS
        assert properties["completed_at"] == {"format": "date-time", "type": ["string", "null"]}
        assert {"type": "string", "format": "ipv4"} in properties["ip_address"]["anyOf"]
        assert {"type": "string", "format": "ipv6"} in properties["ip_address"]["anyOf"]
        assert {"type": "null"} in properties["ip_address"]["anyOf"]
    assert "uuid" in schemas["UserSessionCreate"]["properties"]
    assert "uuid" not in schemas["UserSessionPatch"]["properties"]


def test_nullable_fields_of_the_representation_are_declared_nullable(document: dict[str, Any]) -> None:
    properties = document["components"]["schemas"]["UserSession"]["properties"]
    for name in ("name", "email", "completed_at", "expires_at", "deleted_at", "last_resend_at"):
        assert "null" in properties[name]["type"], name
    for name in ("uuid", "created_at", "updated_at", "version", "metadata"):
        assert "null" not in properties[name]["type"], name


def test_security_schemes_apply_to_sessions_and_not_to_operational_endpoints(document: dict[str, Any]) -> None:
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    for method, path, operation in operations(document):
        if path.startswith("/user-sessions"):
            assert operation["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}], (method, path)
        else:
            assert operation["security"] == [], (method, path)


def test_the_idempotency_retention_is_published(document: dict[str, Any]) -> None:
    assert document["x-idempotency-retention"] == IDEMPOTENCY_RETENTION == "24h"
    assert "24h" in document["info"]["description"]
    assert document["components"]["parameters"]["Idempotency-Key"]["x-idempotency-retention"] == "24h"


def test_every_created_or_read_session_links_to_the_operations_on_it(document: dict[str, Any]) -> None:
    links = document["paths"]["/user-sessions"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "getUserSession",
        "headUserSession",
        "updateUserSession",
        "deleteUserSession",
        "restoreUserSession",
        "appendConversationItems",
        "listConversationItems",
        "popConversationItem",
        "clearConversationItems",
    }
    assert links["UpdateUserSession"]["parameters"]["header.If-Match"] == "$response.header.ETag"


def test_each_items_operation_lists_the_statuses_the_contract_gives_it(document: dict[str, Any]) -> None:
    items = "/user-sessions/{user_session_uuid}/items"
    common = {"400", "401", "404", "414", "429", "431", "500", "503"}
    body = {"413", "415", "422"}
    idempotent = {"409", "422"}
    assert statuses(document, "post", items) == common | body | idempotent | {"201", "403"}
    assert statuses(document, "get", items) == common | {"200"}
    assert statuses(document, "delete", items) == common | {"204", "403"}
    assert statuses(document, "post", items + "/pop") == common | idempotent | {"200", "403"}
    assert statuses(document, "get", items + "/{item_id}") == common | {"200"}
    assert statuses(document, "delete", items + "/{item_id}") == common | {"204", "403"}
    append = document["paths"][items]["post"]
    assert "1 MiB" in append["responses"]["413"]["description"]
    assert "ITEM_ALREADY_EXISTS" in append["responses"]["409"]["description"]
    assert {resolve(document, parameter)["name"] for parameter in append["parameters"]} >= {"Idempotency-Key"}
    assert "Idempotency-Key" in {
        resolve(document, parameter)["name"] for parameter in document["paths"][items + "/pop"]["post"]["parameters"]
    }
    for operation in ("get", "post", "delete"):
        for status, response in document["paths"][items][operation]["responses"].items():
            if status in ("414", "431"):
                continue  # gunicorn's own refusals, before the service sees the request
            assert {"Cache-Control", "Vary"} <= set(response["headers"])


def test_an_item_links_to_the_operations_on_it(document: dict[str, Any]) -> None:
    popped = document["paths"]["/user-sessions/{user_session_uuid}/items/pop"]["post"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in popped.values()} == {"getConversationItem", "deleteConversationItem"}
    assert popped["GetConversationItem"]["parameters"] == {
        "user_session_uuid": "$request.path.user_session_uuid",
        "item_id": "$response.body#/id",
    }


def test_the_json_document_is_deterministic(spec_client: FlaskClient) -> None:
    first = spec_client.get("/openapi.json").get_data(as_text=True)
    assert json.loads(first) == json.loads(spec_client.get("/openapi.json").get_data(as_text=True))
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_openapi_write_command_writes_the_committed_file(spec_app: Flask, tmp_path: Path) -> None:
    """``make openapi`` runs this command."""
    written = tmp_path / "openapi.yaml"
    result = spec_app.test_cli_runner().invoke(args=["openapi", "write", "--format", "yaml", str(written)])
    assert result.exit_code == 0, result.output
    assert written.read_text() == COMMITTED.read_text()
    assert "openapi write --format yaml openapi.yaml" in (PROJECT_ROOT / "Makefile").read_text()
